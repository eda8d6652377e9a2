package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestFamilyRotation(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openTest(t, c)
	exp := t0.Add(24 * time.Hour)

	f, err := s.CreateFamily(ctx, Family{ID: "fam", Current: "rt1", Issuer: iss, Subject: "alice", SessionID: "sid", ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	if !f.CreatedAt.Equal(t0) || f.Revoked() || f.Rotations != 0 {
		t.Fatalf("created %+v", f)
	}

	c.Advance(time.Minute)
	f, err = s.RotateFamily(ctx, "fam", "rt1", "rt2")
	if err != nil {
		t.Fatal(err)
	}
	if f.Current != "rt2" || f.Rotations != 1 || !f.RotatedAt.Equal(c.Now()) || !f.ExpiresAt.Equal(exp) {
		t.Fatalf("after rotation %+v", f)
	}
	f, err = s.RotateFamily(ctx, "fam", "rt2", "rt3")
	if err != nil || f.Current != "rt3" || f.Rotations != 2 {
		t.Fatalf("second rotation: %+v, %v", f, err)
	}

	for _, h := range []string{"rt1", "rt2", "rt3"} {
		got, err := s.FindFamily(ctx, h)
		if err != nil || got.ID != "fam" || got.Current != "rt3" {
			t.Errorf("FindFamily(%s) = %+v, %v", h, got, err)
		}
	}
	if _, err := s.FindFamily(ctx, "rt9"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FindFamily(unknown): err = %v, want ErrNotFound", err)
	}

	t.Run("fail/unknown hash is not reuse", func(t *testing.T) {
		if _, err := s.RotateFamily(ctx, "fam", "rt9", "rt10"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		if f, _ := s.FindFamily(ctx, "rt3"); f.Revoked() {
			t.Fatal("family revoked by an unknown hash")
		}
	})

	t.Run("fail/new hash already taken", func(t *testing.T) {
		if _, err := s.RotateFamily(ctx, "fam", "rt3", "rt1"); !errors.Is(err, ErrExists) {
			t.Fatalf("err = %v, want ErrExists", err)
		}
		if f, _ := s.FindFamily(ctx, "rt3"); f.Current != "rt3" {
			t.Fatalf("failed rotation changed the family: %+v", f)
		}
	})

	t.Run("fail/unknown family", func(t *testing.T) {
		if _, err := s.RotateFamily(ctx, "nope", "rt3", "rt4"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})

	t.Run("fail/reuse of a rotated-out token revokes the family", func(t *testing.T) {
		c.Advance(time.Minute)
		f, err := s.RotateFamily(ctx, "fam", "rt1", "rt4")
		if !errors.Is(err, ErrRefreshReuse) {
			t.Fatalf("err = %v, want ErrRefreshReuse", err)
		}
		if f.ID != "fam" || f.SessionID != "sid" || !f.RevokedAt.Equal(c.Now()) {
			t.Fatalf("returned family %+v, want it revoked now with its session", f)
		}
		if got, _ := s.FindFamily(ctx, "rt3"); !got.Revoked() {
			t.Fatalf("stored family not revoked: %+v", got)
		}
		// The legitimate holder of the current token is refused too.
		if _, err := s.RotateFamily(ctx, "fam", "rt3", "rt5"); !errors.Is(err, ErrFamilyRevoked) {
			t.Fatalf("rotating a revoked family: err = %v, want ErrFamilyRevoked", err)
		}
	})

	t.Run("ok/the family and its hashes end at its expiry", func(t *testing.T) {
		c.Advance(24 * time.Hour)
		if _, err := s.FindFamily(ctx, "rt3"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("expired family: err = %v, want ErrNotFound", err)
		}
		n, err := s.Sweep(ctx, c.Now())
		if err != nil || n != 4 { // the family and rt1..rt3
			t.Fatalf("Sweep = %d, %v; want 4", n, err)
		}
		st, _ := s.Stats(ctx)
		if st.Families != 0 || st.FamilyTokens != 0 {
			t.Fatalf("stats after sweep %+v", st)
		}
	})
}

func TestCreateFamily(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := openTest(t, c)
	exp := t0.Add(time.Hour)
	valid := Family{Current: "h1", Issuer: iss, Subject: "alice", ExpiresAt: exp}

	f, err := s.CreateFamily(ctx, valid)
	if err != nil || f.ID == "" {
		t.Fatalf("CreateFamily = %+v, %v; want a random id", f, err)
	}
	dup := valid
	dup.ID = f.ID
	dup.Current = "h2"
	if _, err := s.CreateFamily(ctx, dup); !errors.Is(err, ErrExists) {
		t.Errorf("same id: err = %v, want ErrExists", err)
	}
	if _, err := s.CreateFamily(ctx, valid); !errors.Is(err, ErrExists) {
		t.Errorf("same token hash: err = %v, want ErrExists", err)
	}

	for name, mod := range map[string]func(*Family){
		"fail/no current hash": func(f *Family) { f.Current = "" },
		"fail/no issuer":       func(f *Family) { f.Issuer = "" },
		"fail/no subject":      func(f *Family) { f.Subject = "" },
		"fail/no expiry":       func(f *Family) { f.ExpiresAt = time.Time{} },
		"fail/bad id":          func(f *Family) { f.ID = "a\nb" },
	} {
		t.Run(name, func(t *testing.T) {
			f := valid
			f.Current = "other"
			mod(&f)
			if _, err := s.CreateFamily(ctx, f); !errors.Is(err, ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := s.RotateFamily(ctx, f.ID, "h1", "h1"); !errors.Is(err, ErrInvalid) {
		t.Errorf("rotate to the same hash: err = %v, want ErrInvalid", err)
	}

	// An expired family's id and hashes may be used again, and its old
	// hashes do not count as reuse of the new family.
	c.Advance(time.Hour)
	again := valid
	again.ID, again.ExpiresAt = f.ID, c.Now().Add(time.Hour)
	again.Current = "h9"
	if _, err := s.CreateFamily(ctx, again); err != nil {
		t.Fatalf("recreate after expiry: %v", err)
	}
	if _, err := s.RotateFamily(ctx, f.ID, "h1", "h10"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("hash of the expired family: err = %v, want ErrNotFound", err)
	}
}

func TestUseRefreshToken(t *testing.T) {
	c := newClock()
	s := openTest(t, c)
	ctx := context.Background()
	fam := Family{ID: "fam-1", Issuer: iss, Subject: "alice", SessionID: "s1", ExpiresAt: c.Now().Add(24 * time.Hour)}
	h := func(n int) string { return fmt.Sprintf("hash-%d", n) }

	f, err := s.UseRefreshToken(ctx, fam, h(1))
	if err != nil || f.Current != h(1) || f.Rotations != 0 {
		t.Fatalf("first token: %+v, %v", f, err)
	}
	c.Advance(time.Minute)
	if f, err = s.UseRefreshToken(ctx, fam, h(2)); err != nil || f.Current != h(2) || f.Rotations != 1 || !f.CreatedAt.Equal(t0) {
		t.Fatalf("second token: %+v, %v", f, err)
	}
	if f, err = s.UseRefreshToken(ctx, fam, h(1)); !errors.Is(err, ErrRefreshReuse) || !f.Revoked() || f.SessionID != "s1" {
		t.Fatalf("rotated-out token again: %+v, %v; want ErrRefreshReuse with the revoked family", f, err)
	}
	if _, err = s.UseRefreshToken(ctx, fam, h(3)); !errors.Is(err, ErrFamilyRevoked) {
		t.Fatalf("a new token of a revoked family: %v, want ErrFamilyRevoked", err)
	}
	if _, err = s.UseRefreshToken(ctx, fam, h(2)); !errors.Is(err, ErrRefreshReuse) {
		t.Fatalf("the current token again: %v, want ErrRefreshReuse", err)
	}
}
