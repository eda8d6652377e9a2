package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

const iss = "https://as.example.com"

func mustPut(t testing.TB, s *Bolt, r Revocation) Revocation {
	t.Helper()
	got, err := s.PutRevocation(context.Background(), r)
	if err != nil {
		t.Fatalf("PutRevocation(%+v): %v", r, err)
	}
	return got
}

func TestCheckRevocation(t *testing.T) {
	cut := t0.Add(-time.Hour) // the cut-off of every cut-off revocation below
	before, after := cut.Add(-time.Second), cut.Add(time.Second)
	exp := t0.Add(time.Hour)
	tok := func(mod func(*TokenRef)) TokenRef {
		r := TokenRef{Issuer: iss, Subject: "alice", JTI: "jti-1", SessionID: "sid-1", ClientID: "app", IssuedAt: before}
		if mod != nil {
			mod(&r)
		}
		return r
	}

	tests := []struct {
		name     string
		stored   []Revocation
		ref      TokenRef
		wantKind Kind // "" when not revoked
	}{
		{name: "ok/nothing stored", ref: tok(nil)},

		{name: "revoked/jti", stored: []Revocation{{Kind: KindJTI, Value: "jti-1"}}, ref: tok(nil), wantKind: KindJTI},
		{name: "revoked/jti whatever the iat", stored: []Revocation{{Kind: KindJTI, Value: "jti-1", NotBefore: cut}}, ref: tok(func(r *TokenRef) { r.IssuedAt = t0 }), wantKind: KindJTI},
		{name: "ok/another jti", stored: []Revocation{{Kind: KindJTI, Value: "jti-2"}}, ref: tok(nil)},
		{name: "ok/jti of another issuer", stored: []Revocation{{Kind: KindJTI, Issuer: "https://other.example.com", Value: "jti-1"}}, ref: tok(nil)},
		{name: "ok/token without jti", stored: []Revocation{{Kind: KindJTI, Value: "jti-1"}}, ref: tok(func(r *TokenRef) { r.JTI = "" })},

		{name: "revoked/subject, issued before the cut-off", stored: []Revocation{{Kind: KindSubject, Value: "alice", NotBefore: cut}}, ref: tok(nil), wantKind: KindSubject},
		{name: "ok/subject, issued after the cut-off", stored: []Revocation{{Kind: KindSubject, Value: "alice", NotBefore: cut}}, ref: tok(func(r *TokenRef) { r.IssuedAt = after })},
		{name: "ok/subject, issued at the cut-off", stored: []Revocation{{Kind: KindSubject, Value: "alice", NotBefore: cut}}, ref: tok(func(r *TokenRef) { r.IssuedAt = cut })},
		{name: "revoked/subject, token without iat", stored: []Revocation{{Kind: KindSubject, Value: "alice", NotBefore: cut}}, ref: tok(func(r *TokenRef) { r.IssuedAt = time.Time{} }), wantKind: KindSubject},
		{name: "revoked/subject, cut-off defaults to created time", stored: []Revocation{{Kind: KindSubject, Value: "alice"}}, ref: tok(func(r *TokenRef) { r.IssuedAt = t0.Add(-time.Second) }), wantKind: KindSubject},
		{name: "ok/subject, cut-off defaults to created time, issued after", stored: []Revocation{{Kind: KindSubject, Value: "alice"}}, ref: tok(func(r *TokenRef) { r.IssuedAt = t0.Add(time.Second) })},
		{name: "ok/another subject", stored: []Revocation{{Kind: KindSubject, Value: "bob", NotBefore: cut}}, ref: tok(nil)},
		{name: "ok/subject of another issuer", stored: []Revocation{{Kind: KindSubject, Issuer: "https://other.example.com", Value: "alice", NotBefore: cut}}, ref: tok(nil)},

		{name: "revoked/session, issued before the cut-off", stored: []Revocation{{Kind: KindSession, Value: "sid-1", NotBefore: cut}}, ref: tok(nil), wantKind: KindSession},
		{name: "ok/session, issued after the cut-off", stored: []Revocation{{Kind: KindSession, Value: "sid-1", NotBefore: cut}}, ref: tok(func(r *TokenRef) { r.IssuedAt = after })},
		{name: "ok/token without sid", stored: []Revocation{{Kind: KindSession, Value: "sid-1", NotBefore: cut}}, ref: tok(func(r *TokenRef) { r.SessionID = "" })},

		{name: "revoked/client, issued before the cut-off", stored: []Revocation{{Kind: KindClient, Value: "app", NotBefore: cut}}, ref: tok(nil), wantKind: KindClient},
		{name: "ok/client, issued after the cut-off", stored: []Revocation{{Kind: KindClient, Value: "app", NotBefore: cut}}, ref: tok(func(r *TokenRef) { r.IssuedAt = after })},
		{name: "ok/another client", stored: []Revocation{{Kind: KindClient, Value: "other-app", NotBefore: cut}}, ref: tok(nil)},

		{name: "ok/value of one kind does not match another kind", stored: []Revocation{{Kind: KindSubject, Value: "app", NotBefore: cut}, {Kind: KindClient, Value: "alice", NotBefore: cut}}, ref: tok(nil)},

		{name: "revoked/first match is jti, then session, subject, client", stored: []Revocation{
			{Kind: KindClient, Value: "app", NotBefore: cut}, {Kind: KindSubject, Value: "alice", NotBefore: cut},
			{Kind: KindSession, Value: "sid-1", NotBefore: cut}, {Kind: KindJTI, Value: "jti-1"},
		}, ref: tok(nil), wantKind: KindJTI},
		{name: "revoked/session before subject and client", stored: []Revocation{
			{Kind: KindClient, Value: "app", NotBefore: cut}, {Kind: KindSubject, Value: "alice", NotBefore: cut}, {Kind: KindSession, Value: "sid-1", NotBefore: cut},
		}, ref: tok(nil), wantKind: KindSession},
		{name: "revoked/subject before client", stored: []Revocation{
			{Kind: KindClient, Value: "app", NotBefore: cut}, {Kind: KindSubject, Value: "alice", NotBefore: cut},
		}, ref: tok(nil), wantKind: KindSubject},
		{name: "revoked/a later kind matches when an earlier one is past its cut-off", stored: []Revocation{
			{Kind: KindSession, Value: "sid-1", NotBefore: before.Add(-time.Minute)}, {Kind: KindClient, Value: "app", NotBefore: cut},
		}, ref: tok(nil), wantKind: KindClient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, newClock())
			for _, r := range tt.stored {
				if r.Issuer == "" {
					r.Issuer = iss
				}
				r.ExpiresAt = exp
				mustPut(t, s, r)
			}
			got, ok, err := s.CheckRevocation(context.Background(), tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			if ok != (tt.wantKind != "") || got.Kind != tt.wantKind {
				t.Fatalf("CheckRevocation = (%+v, %v), want kind %q", got, ok, tt.wantKind)
			}
			if ok && got.ID == "" {
				t.Errorf("match has no id: %+v", got)
			}
		})
	}
}

func TestCheckRevocationIgnoresExpired(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	ctx := context.Background()
	for _, k := range kinds {
		mustPut(t, s, Revocation{Kind: k, Issuer: iss, Value: "v", ExpiresAt: t0.Add(time.Minute)})
	}
	ref := TokenRef{Issuer: iss, JTI: "v", SessionID: "v", Subject: "v", ClientID: "v", IssuedAt: t0.Add(-time.Hour)}
	if _, ok, err := s.CheckRevocation(ctx, ref); err != nil || !ok {
		t.Fatalf("before expiry: ok=%v err=%v, want revoked", ok, err)
	}
	c.Advance(time.Minute) // a revocation expires at its expiry instant
	if r, ok, err := s.CheckRevocation(ctx, ref); err != nil || ok {
		t.Fatalf("after expiry: (%+v, %v, %v), want not revoked", r, ok, err)
	}
}

func TestCheckRevocationInvalid(t *testing.T) {
	s := openTest(t, newClock())
	for name, ref := range map[string]TokenRef{
		"fail/no issuer":     {JTI: "x"},
		"fail/NUL in issuer": {Issuer: "a\x00b", JTI: "x"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := s.CheckRevocation(context.Background(), ref); !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestPutRevocationReplaceRule(t *testing.T) {
	ctx := context.Background()
	early, late := t0.Add(-2*time.Hour), t0.Add(-time.Hour)
	between := early.Add(30 * time.Minute)
	exp1, exp2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	base := Revocation{Kind: KindSubject, Issuer: iss, Value: "alice"}
	with := func(id string, nb, exp time.Time, reason string) Revocation {
		r := base
		r.ID, r.NotBefore, r.ExpiresAt, r.Reason = id, nb, exp, reason
		return r
	}

	t.Run("ok/later cut-off replaces an earlier one", func(t *testing.T) {
		s := openTest(t, newClock())
		mustPut(t, s, with("r1", early, exp1, "first"))
		got := mustPut(t, s, with("r2", late, exp1, "second"))
		if got.ID != "r2" || !got.NotBefore.Equal(late) || got.Reason != "second" {
			t.Fatalf("kept %+v, want r2", got)
		}
		if _, err := s.GetRevocation(ctx, "r1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("replaced id r1: err = %v, want ErrNotFound", err)
		}
		if _, ok, _ := s.CheckRevocation(ctx, TokenRef{Issuer: iss, Subject: "alice", IssuedAt: between}); !ok {
			t.Error("token issued between the two cut-offs is not revoked")
		}
	})

	t.Run("ok/earlier cut-off arriving late does not weaken the stored one", func(t *testing.T) {
		s := openTest(t, newClock())
		mustPut(t, s, with("r2", late, exp1, "newer event"))
		got := mustPut(t, s, with("r1", early, exp2, "older event delivered late"))
		if got.ID != "r2" || !got.NotBefore.Equal(late) {
			t.Fatalf("kept %+v, want r2 with the later cut-off", got)
		}
		if !got.ExpiresAt.Equal(exp2) {
			t.Errorf("expires_at = %s, want the later expiry %s", got.ExpiresAt, exp2)
		}
		if _, ok, _ := s.CheckRevocation(ctx, TokenRef{Issuer: iss, Subject: "alice", IssuedAt: between}); !ok {
			t.Error("token issued between the two cut-offs is not revoked")
		}
		if _, err := s.GetRevocation(ctx, "r1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("dropped id r1: err = %v, want ErrNotFound", err)
		}
		stored, err := s.GetRevocation(ctx, "r2")
		if err != nil || stored != got {
			t.Errorf("GetRevocation(r2) = %+v, %v; want %+v", stored, err, got)
		}
	})

	t.Run("ok/replacement never shortens the expiry", func(t *testing.T) {
		s := openTest(t, newClock())
		mustPut(t, s, with("r1", early, exp2, ""))
		got := mustPut(t, s, with("r2", late, exp1, ""))
		if got.ID != "r2" || !got.ExpiresAt.Equal(exp2) {
			t.Fatalf("kept %+v, want r2 expiring at %s", got, exp2)
		}
	})

	t.Run("ok/same cut-off: the last write wins", func(t *testing.T) {
		s := openTest(t, newClock())
		mustPut(t, s, with("r1", late, exp1, "a"))
		got := mustPut(t, s, with("r2", late, exp1, "b"))
		if got.ID != "r2" || got.Reason != "b" {
			t.Fatalf("kept %+v, want r2", got)
		}
	})

	t.Run("ok/an expired revocation is replaced whatever its cut-off", func(t *testing.T) {
		c := newClock()
		s := openTest(t, c)
		mustPut(t, s, with("r2", late, t0.Add(time.Minute), ""))
		c.Advance(2 * time.Minute)
		got := mustPut(t, s, with("r1", early, exp1, ""))
		if got.ID != "r1" || !got.NotBefore.Equal(early) || !got.ExpiresAt.Equal(exp1) {
			t.Fatalf("kept %+v, want r1", got)
		}
	})

	t.Run("ok/putting the same revocation again is idempotent", func(t *testing.T) {
		s := openTest(t, newClock())
		a := mustPut(t, s, with("r1", late, exp1, "x"))
		b := mustPut(t, s, with("r1", late, exp1, "x"))
		if a != b {
			t.Fatalf("%+v != %+v", a, b)
		}
		list, err := s.ListRevocations(ctx, RevocationFilter{})
		if err != nil || len(list) != 1 {
			t.Fatalf("list = %+v, %v; want one", list, err)
		}
	})

	t.Run("fail/id already names another revocation", func(t *testing.T) {
		s := openTest(t, newClock())
		mustPut(t, s, with("r1", late, exp1, ""))
		other := with("r1", late, exp1, "")
		other.Value = "bob"
		if _, err := s.PutRevocation(ctx, other); !errors.Is(err, ErrExists) {
			t.Fatalf("err = %v, want ErrExists", err)
		}
	})

	t.Run("ok/id of an expired revocation may be reused", func(t *testing.T) {
		c := newClock()
		s := openTest(t, c)
		mustPut(t, s, with("r1", late, t0.Add(time.Minute), ""))
		c.Advance(time.Hour)
		other := with("r1", late, t0.Add(2*time.Hour), "")
		other.Value = "bob"
		got := mustPut(t, s, other)
		if r, err := s.GetRevocation(ctx, "r1"); err != nil || r != got {
			t.Fatalf("GetRevocation(r1) = %+v, %v; want %+v", r, err, got)
		}
		// Sweeping the expired one must leave the reused id alone.
		if _, err := s.Sweep(ctx, c.Now()); err != nil {
			t.Fatal(err)
		}
		if r, err := s.GetRevocation(ctx, "r1"); err != nil || r != got {
			t.Fatalf("after sweep GetRevocation(r1) = %+v, %v; want %+v", r, err, got)
		}
	})
}

func TestPutRevocationDefaults(t *testing.T) {
	s := openTest(t, newClock())
	got := mustPut(t, s, Revocation{Kind: KindSession, Issuer: iss, Value: "sid", ExpiresAt: t0.Add(time.Hour).In(time.FixedZone("x", 3600))})
	if got.ID == "" {
		t.Error("no id assigned")
	}
	if !got.CreatedAt.Equal(t0) || !got.NotBefore.Equal(t0) {
		t.Errorf("created_at = %s, not_before = %s, want both %s", got.CreatedAt, got.NotBefore, t0)
	}
	if got.ExpiresAt.Location() != time.UTC {
		t.Errorf("expires_at not normalised to UTC: %s", got.ExpiresAt)
	}
}

func TestPutRevocationInvalid(t *testing.T) {
	exp := t0.Add(time.Hour)
	ok := Revocation{Kind: KindJTI, Issuer: iss, Value: "v", ExpiresAt: exp}
	tests := map[string]func(*Revocation){
		"fail/unknown kind":        func(r *Revocation) { r.Kind = "user" },
		"fail/no kind":             func(r *Revocation) { r.Kind = "" },
		"fail/no issuer":           func(r *Revocation) { r.Issuer = "" },
		"fail/NUL in issuer":       func(r *Revocation) { r.Issuer = "a\x00b" },
		"fail/no value":            func(r *Revocation) { r.Value = "" },
		"fail/value too long":      func(r *Revocation) { r.Value = strings.Repeat("v", MaxFieldLen+1) },
		"fail/value not UTF-8":     func(r *Revocation) { r.Value = "\xff" },
		"fail/reason too long":     func(r *Revocation) { r.Reason = strings.Repeat("r", MaxFieldLen+1) },
		"fail/id with a space":     func(r *Revocation) { r.ID = "a b" },
		"fail/id too long":         func(r *Revocation) { r.ID = strings.Repeat("i", MaxKeyLen+1) },
		"fail/no expiry":           func(r *Revocation) { r.ExpiresAt = time.Time{} },
		"fail/expiry in the past":  func(r *Revocation) { r.ExpiresAt = t0.Add(-time.Second) },
		"fail/expiry is now":       func(r *Revocation) { r.ExpiresAt = t0 },
		"fail/cut-off before 1678": func(r *Revocation) { r.NotBefore = time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC) },
		"fail/cut-off beyond 2262": func(r *Revocation) { r.NotBefore = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) },
	}
	s := openTest(t, newClock())
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			r := ok
			mod(&r)
			if _, err := s.PutRevocation(context.Background(), r); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if list, _ := s.ListRevocations(context.Background(), RevocationFilter{}); len(list) != 0 {
		t.Errorf("invalid revocations were stored: %+v", list)
	}
}

func TestGetDeleteRevocation(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openTest(t, c)
	r := mustPut(t, s, Revocation{ID: "rev-1", Kind: KindClient, Issuer: iss, Value: "app", Reason: "compromised", ExpiresAt: t0.Add(time.Hour)})

	got, err := s.GetRevocation(ctx, "rev-1")
	if err != nil || got != r {
		t.Fatalf("GetRevocation = %+v, %v; want %+v", got, err, r)
	}
	if _, err := s.GetRevocation(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteRevocation(ctx, "rev-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRevocation(ctx, "rev-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}
	if _, err := s.GetRevocation(ctx, "rev-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: err = %v, want ErrNotFound", err)
	}
	if _, ok, _ := s.CheckRevocation(ctx, TokenRef{Issuer: iss, ClientID: "app"}); ok {
		t.Error("deleted revocation still matches")
	}
	if n := ttlEntries(t, s); n != 0 {
		t.Errorf("%d TTL entries left after delete", n)
	}

	mustPut(t, s, Revocation{ID: "rev-2", Kind: KindJTI, Issuer: iss, Value: "j", ExpiresAt: t0.Add(time.Minute)})
	c.Advance(time.Minute)
	if _, err := s.GetRevocation(ctx, "rev-2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteRevocation(ctx, "rev-2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete expired: err = %v, want ErrNotFound", err)
	}
}

func TestListRevocations(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openTest(t, c)
	other := "https://other.example.com"
	exp := t0.Add(time.Hour)
	for _, r := range []Revocation{
		{ID: "c1", Kind: KindClient, Issuer: iss, Value: "app"},
		{ID: "s1", Kind: KindSubject, Issuer: iss, Value: "bob"},
		{ID: "s2", Kind: KindSubject, Issuer: iss, Value: "alice"},
		{ID: "s3", Kind: KindSubject, Issuer: other, Value: "alice"},
		{ID: "j1", Kind: KindJTI, Issuer: other, Value: "alice"},
		{ID: "x1", Kind: KindSession, Issuer: iss, Value: "sid"},
	} {
		r.ExpiresAt = exp
		mustPut(t, s, r)
	}
	mustPut(t, s, Revocation{ID: "gone", Kind: KindSession, Issuer: iss, Value: "old", ExpiresAt: t0.Add(time.Second)})
	c.Advance(time.Second)

	tests := []struct {
		name string
		f    RevocationFilter
		want string
	}{
		{"ok/all, by kind then issuer then value, expired left out", RevocationFilter{}, "j1 x1 s2 s1 s3 c1"},
		{"ok/by kind", RevocationFilter{Kind: KindSubject}, "s2 s1 s3"},
		{"ok/by kind and issuer", RevocationFilter{Kind: KindSubject, Issuer: other}, "s3"},
		{"ok/by issuer", RevocationFilter{Issuer: other}, "j1 s3"},
		{"ok/by value", RevocationFilter{Value: "alice"}, "j1 s2 s3"},
		{"ok/by issuer and value", RevocationFilter{Issuer: iss, Value: "alice"}, "s2"},
		{"ok/by kind, issuer and value", RevocationFilter{Kind: KindSubject, Issuer: other, Value: "alice"}, "s3"},
		{"ok/limit", RevocationFilter{Limit: 2}, "j1 x1"},
		{"ok/limit with point lookups", RevocationFilter{Value: "alice", Issuer: other, Limit: 1}, "j1"},
		{"ok/no match", RevocationFilter{Issuer: "https://nobody"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := s.ListRevocations(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range list {
				ids = append(ids, r.ID)
			}
			if got := strings.Join(ids, " "); got != tt.want {
				t.Errorf("ids = %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := s.ListRevocations(ctx, RevocationFilter{Kind: "user"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown kind: err = %v, want ErrInvalid", err)
	}
}

func TestPutRevocationsIsAllOrNothing(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	ctx := context.Background()
	exp := c.Now().Add(time.Hour)
	good := []Revocation{
		{Kind: KindJTI, Issuer: iss, Value: "bulk-1", ExpiresAt: exp},
		{Kind: KindSubject, Issuer: iss, Value: "bulk-2", ExpiresAt: exp},
	}
	kept, err := s.PutRevocations(ctx, good)
	if err != nil || len(kept) != 2 || kept[0].ID == "" {
		t.Fatalf("PutRevocations = %v, %v", kept, err)
	}
	bad := []Revocation{{Kind: KindJTI, Issuer: iss, Value: "bulk-3", ExpiresAt: exp}, {Kind: "user", Issuer: iss, Value: "x", ExpiresAt: exp}}
	if _, err := s.PutRevocations(ctx, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an import with an invalid entry: err = %v, want ErrInvalid", err)
	}
	if _, found, _ := s.CheckRevocation(ctx, TokenRef{Issuer: iss, JTI: "bulk-3"}); found {
		t.Error("an import that failed stored part of its revocations")
	}
	if _, found, _ := s.CheckRevocation(ctx, TokenRef{Issuer: iss, JTI: "bulk-1"}); !found {
		t.Error("bulk-1 not stored")
	}
}
