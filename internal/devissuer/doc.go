// Package devissuer is a small in-process authorization server: it holds
// one fresh signing key, publishes it as a JWKS and mints JWT access tokens
// (RFC 9068 shaped by default). The dev mode serves it, and tests across
// the repository use it to produce real tokens — including deliberately
// broken ones, since every header and claim can be overridden.
//
// It is not meant for production: keys live only in memory and the token
// endpoint authenticates nobody.
package devissuer
