package policy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/tokenguard/pdp/internal/config"
)

// verificationAlgorithms are the bundle signature algorithms accepted.
var verificationAlgorithms = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
}

// verificationConfig turns policy.verification into OPA's bundle
// verification config: one key, looked up by the configured key id only
// (never by the bundle's own "kid"), with the configured algorithm (never
// the signature's own "alg"). A key that does not fit the algorithm, or a
// private key where a public one belongs, is a configuration error.
func verificationConfig(v *config.Verification) (*bundle.VerificationConfig, error) {
	if v == nil {
		return nil, nil
	}
	if !slices.Contains(verificationAlgorithms, v.Algorithm) {
		return nil, fmt.Errorf("policy.verification.algorithm: %q is not one of %s", v.Algorithm, strings.Join(verificationAlgorithms, ", "))
	}
	raw, err := os.ReadFile(v.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("policy.verification.key_file: %w", err)
	}
	if strings.HasPrefix(v.Algorithm, "HS") {
		// Used byte for byte, as `pdp opa build --signing-key FILE` reads it.
		if len(raw) < 32 {
			return nil, errors.New("policy.verification.key_file: an HMAC secret must be at least 32 bytes")
		}
	} else if err := checkPublicKey(raw, v.Algorithm); err != nil {
		return nil, fmt.Errorf("policy.verification.key_file: %w", err)
	}
	keyID := v.KeyID
	if keyID == "" {
		keyID = "default"
	}
	keys := map[string]*bundle.KeyConfig{keyID: {Key: string(raw), Algorithm: v.Algorithm, Scope: v.Scope}}
	return bundle.NewVerificationConfig(keys, keyID, v.Scope, nil), nil
}

// checkPublicKey accepts a PEM public key (or certificate) of the type alg
// needs.
func checkPublicKey(raw []byte, alg string) error {
	block, _ := pem.Decode(raw)
	if block == nil {
		return errors.New("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return errors.New("holds a private key: give the public key only (openssl pkey -in key.pem -pubout)")
		}
		return fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	if err != nil {
		return err
	}
	ok := false
	switch k := key.(type) {
	case *rsa.PublicKey:
		ok = alg[0] == 'R' || alg[0] == 'P'
	case *ecdsa.PublicKey:
		ok = alg[:2] == "ES" && k.Curve.Params().BitSize == map[string]int{"ES256": 256, "ES384": 384, "ES512": 521}[alg]
	case ed25519.PublicKey:
		ok = alg == "EdDSA"
	}
	if !ok {
		return fmt.Errorf("a %T does not fit algorithm %s", key, alg)
	}
	return nil
}

// readBundle reads and, when verification is on, verifies one bundle.
// Delta bundles are refused: a bundle is always the whole policy part.
// Each file is held to lim.MaxFileBytes; the caller checks the total.
func readBundle(name string, loader bundle.DirectoryLoader, vc *bundle.VerificationConfig, lim Limits) (*bundle.Bundle, error) {
	lim = lim.orDefault()
	r := bundle.NewCustomReader(loader.WithSizeLimitBytes(lim.MaxFileBytes)).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotations(true).
		WithSizeLimitBytes(lim.MaxFileBytes)
	if vc != nil {
		r = r.WithBundleVerificationConfig(vc)
	} else {
		r = r.WithSkipBundleVerification(true)
	}
	b, err := r.Read()
	if err != nil {
		// (What does not parse, verify or fit is a refused version.)
		return nil, refused(fmt.Errorf("read bundle %s: %w", name, err))
	}
	if b.Type() != bundle.SnapshotBundleType {
		return nil, fmt.Errorf("read bundle %s: %s bundles are not supported", name, b.Type())
	}
	for _, mf := range b.Modules {
		// Modules are compiled under "name:path": two bundles may both
		// hold a /policy.rego.
		if loc := mf.Parsed.Package.Location; loc != nil {
			named := *loc
			named.File = name + ":" + mf.Path
			mf.Parsed.Package.Location = &named
		}
	}
	return &b, nil
}

// readLocalBundle reads a bundle directory or .tar.gz file, its sizes
// checked against lim before it is read.
func readLocalBundle(name, path string, vc *bundle.VerificationConfig, lim Limits) (*bundle.Bundle, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read bundle %s: %w", name, err)
	}
	if fi.IsDir() {
		if _, err := checkTree(path, lim, nil); err != nil {
			return nil, fmt.Errorf("read bundle %s: %w", name, err)
		}
		return readBundle(name, bundle.NewDirectoryLoader(path), vc, lim)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read bundle %s: %w", name, err)
	}
	defer f.Close()
	if err := checkTarball(name, path, f, lim); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read bundle %s: %w", name, err)
	}
	return readBundle(name, bundle.NewTarballLoaderWithBaseURL(f, ""), vc, lim)
}

// ReadBundle reads a local bundle (a directory or .tar.gz file) as the
// policy set it makes alone, its sizes checked against lim; its signature,
// if any, is not verified.
func ReadBundle(name, path string, lim Limits) (*Set, error) {
	b, err := readLocalBundle(name, path, nil, lim)
	if err != nil {
		return nil, err
	}
	return combine([]string{name}, []*bundle.Bundle{b})
}

// errNotModified is a bundle service's 304 answer.
var errNotModified = errors.New("bundle not modified")

// fetchBundle downloads a bundle from a bundle service. With etag set it
// asks If-None-Match and returns errNotModified on 304. The credential, when
// set, is sent as a bearer token.
func fetchBundle(ctx context.Context, client *http.Client, name, url, etag, credential string, vc *bundle.VerificationConfig, lim Limits) (*bundle.Bundle, string, error) {
	lim = lim.orDefault()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", fmt.Errorf("download bundle %s: %w", name, err)
	}
	req.Header.Set("Accept", "application/gzip, application/octet-stream")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("download bundle %s: %w", name, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		return nil, etag, errNotModified
	default:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, "", fmt.Errorf("download bundle %s: the bundle service answered %s", name, resp.Status)
	}
	if resp.ContentLength > lim.MaxTotalBytes {
		return nil, "", fmt.Errorf("download bundle %s: %w", name, &TooLargeError{Path: redact(url), Size: resp.ContentLength, Limit: lim.MaxTotalBytes, Setting: "policy.max_total_bytes"})
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, lim.MaxTotalBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("download bundle %s: %w", name, err)
	}
	if int64(len(body)) > lim.MaxTotalBytes {
		return nil, "", fmt.Errorf("download bundle %s: %w", name, &TooLargeError{Path: redact(url), Size: int64(len(body)), Limit: lim.MaxTotalBytes, Setting: "policy.max_total_bytes"})
	}
	if err := checkTarball(name, redact(url), bytes.NewReader(body), lim); err != nil {
		return nil, "", err
	}
	b, err := readBundle(name, bundle.NewTarballLoaderWithBaseURL(bytes.NewReader(body), ""), vc, lim)
	if err != nil {
		return nil, "", err
	}
	return b, resp.Header.Get("ETag"), nil
}

// combine makes one policy set of several bundles. Their roots must not
// overlap (a bundle without a manifest owns every root, so it can only be
// alone); OPA's bundle merge checks that, and places each bundle's data.
func combine(names []string, bundles []*bundle.Bundle) (*Set, error) {
	source := "bundle:" + names[0]
	data := bundles[0].Data
	if len(bundles) > 1 {
		source = "bundles:" + strings.Join(names, ",")
		for i := range bundles {
			for j := i + 1; j < len(bundles); j++ {
				if err := rootsOverlap(*bundles[i].Manifest.Roots, *bundles[j].Manifest.Roots); err != nil {
					return nil, fmt.Errorf("bundles %s and %s: %w", names[i], names[j], err)
				}
			}
		}
		merged, err := bundle.MergeWithRegoVersion(bundles, ast.RegoV1, false)
		if err != nil {
			return nil, fmt.Errorf("combine %s: %w", source, err)
		}
		data = merged.Data
	}
	if data == nil {
		data = map[string]any{}
	}
	set := &Set{Data: data, Source: source}
	raw := map[string][]byte{}
	for _, b := range bundles {
		for _, mf := range b.Modules {
			if isTestModule(mf.Path) {
				set.Tests = append(set.Tests, mf.Parsed)
				continue
			}
			set.Modules = append(set.Modules, mf.Parsed)
			raw[moduleName(mf.Parsed)] = mf.Raw
		}
	}
	var err error
	if set.Revision, set.Bytes, err = revisionOf(raw, set.Data); err != nil {
		return nil, fmt.Errorf("combine %s: %w", source, err)
	}
	return set, nil
}

// rootsOverlap reports the first pair of overlapping roots.
func rootsOverlap(a, b []string) error {
	for _, ra := range a {
		for _, rb := range b {
			if bundle.RootPathsOverlap(strings.Trim(ra, "/"), strings.Trim(rb, "/")) {
				return fmt.Errorf("roots %q and %q overlap (give each bundle its own roots in its .manifest)", ra, rb)
			}
		}
	}
	return nil
}
