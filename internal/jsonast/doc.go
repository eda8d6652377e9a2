// Package jsonast parses attacker-supplied JSON (JOSE headers, JWT claims,
// introspection responses) strictly and directly into OPA ast values.
//
// Unlike encoding/json, which silently keeps the last of duplicate member
// names and replaces invalid UTF-8, Parse rejects every input whose meaning
// could differ between two JSON parsers: duplicate member names at any depth,
// invalid UTF-8, lone UTF-16 surrogates in escapes, and trailing data after
// the value. Nesting is bounded so that a hostile document cannot exhaust
// the stack. Numbers keep their literal text (ast.Number), so no precision
// is lost on the way to Rego.
package jsonast
