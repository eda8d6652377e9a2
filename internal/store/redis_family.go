package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// famArgs are the arguments every family script starts with.
func (s *Shared) famArgs(now time.Time) []any {
	return []any{pad(now.UnixNano()), s.keys.famPrefix, normTime(now).Format(time.RFC3339Nano)}
}

// familyReply decodes a family script's reply.
func familyReply(res any) (verdict string, f Family, err error) {
	parts, ok := res.([]any)
	if !ok || len(parts) == 0 {
		return "", Family{}, fmt.Errorf("unexpected script reply %T", res)
	}
	verdict, _ = parts[0].(string)
	if len(parts) > 1 {
		j, _ := parts[1].(string)
		if err := json.Unmarshal([]byte(j), &f); err != nil {
			return "", Family{}, fmt.Errorf("unreadable family: %w", err)
		}
		f = normFamily(f)
	}
	return verdict, f, nil
}

// normFamily gives the times of a decoded family the form Bolt returns.
func normFamily(f Family) Family {
	f.CreatedAt, f.RotatedAt, f.RevokedAt, f.ExpiresAt = normTime(f.CreatedAt), normTime(f.RotatedAt), normTime(f.RevokedAt), normTime(f.ExpiresAt)
	return f
}

// CreateFamily records a new family in Redis.
func (s *Shared) CreateFamily(ctx context.Context, f Family) (Family, error) {
	if err := ctx.Err(); err != nil {
		return Family{}, err
	}
	now := s.now()
	f, err := prepareFamily(f, now)
	if err != nil {
		return Family{}, fmt.Errorf("store: create family: %w", err)
	}
	body, err := json.Marshal(f)
	if err != nil {
		return Family{}, fmt.Errorf("store: create family: %w", err)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	args := append(s.famArgs(now), string(body), pad(f.ExpiresAt.UnixNano()), ttlMillis(f.ExpiresAt, now))
	res, err := scriptCreateFamily.Run(cctx, s.rdb(), []string{s.keys.famPrefix + f.ID, s.keys.tokPrefix + f.Current}, args...).Result()
	if err != nil {
		return Family{}, failed(ctx, "create family", err)
	}
	if v, _, _ := familyReply(res); v == "exists" {
		return Family{}, fmt.Errorf("store: create family: %w: family %q or its refresh-token hash", ErrExists, f.ID)
	}
	return f, nil
}

// FindFamily returns the family a refresh-token hash belongs to.
func (s *Shared) FindFamily(ctx context.Context, tokenHash string) (Family, error) {
	if err := ctx.Err(); err != nil {
		return Family{}, err
	}
	if err := checkKey("token hash", tokenHash); err != nil {
		return Family{}, fmt.Errorf("store: find family: %w", err)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	res, err := scriptFindFamily.Run(cctx, s.rdb(), []string{s.keys.tokPrefix + tokenHash}, s.famArgs(s.now())...).Result()
	if err != nil {
		return Family{}, failed(ctx, "find family", err)
	}
	v, f, err := familyReply(res)
	switch {
	case err != nil:
		return Family{}, fmt.Errorf("store: find family: %w", err)
	case v != "ok":
		return Family{}, fmt.Errorf("store: find family: %w", ErrNotFound)
	}
	return f, nil
}

// RotateFamily moves the family from oldHash to newHash, or detects reuse of
// oldHash, with the rules of Bolt.RotateFamily.
func (s *Shared) RotateFamily(ctx context.Context, familyID, oldHash, newHash string) (Family, error) {
	if err := ctx.Err(); err != nil {
		return Family{}, err
	}
	if err := checkRotation(familyID, oldHash, newHash); err != nil {
		return Family{}, fmt.Errorf("store: rotate family: %w", err)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	args := append(s.famArgs(s.now()), familyID, oldHash, newHash)
	res, err := scriptRotateFamily.Run(cctx, s.rdb(),
		[]string{s.keys.famPrefix + familyID, s.keys.tokPrefix + oldHash, s.keys.tokPrefix + newHash}, args...).Result()
	if err != nil {
		err = failed(ctx, "rotate family", err)
		if errors.Is(err, ErrUnavailable) {
			s.degrade(ctx, CheckRefresh, Deny)
		}
		return Family{}, err
	}
	v, f, err := familyReply(res)
	if err != nil {
		return Family{}, fmt.Errorf("store: rotate family: %w", err)
	}
	switch v {
	case "ok":
		return f, nil
	case "revoked":
		return f, fmt.Errorf("store: rotate family %q: %w", familyID, ErrFamilyRevoked)
	case "reuse":
		return f, fmt.Errorf("store: rotate family %q: %w; family revoked", familyID, ErrRefreshReuse)
	case "exists":
		return Family{}, fmt.Errorf("store: rotate family: %w: refresh-token hash already belongs to a family", ErrExists)
	}
	return Family{}, fmt.Errorf("store: rotate family: family %q: %w", familyID, ErrNotFound)
}

// UseRefreshToken is UseRefreshTokenFrom without a reuse grace.
func (s *Shared) UseRefreshToken(ctx context.Context, f Family, hash string) (Family, error) {
	return s.UseRefreshTokenFrom(ctx, f, hash, Presentation{})
}

// UseRefreshTokenFrom records the presentation of a refresh token, with the
// rules of Bolt.UseRefreshTokenFrom, across replicas. When Redis is
// unavailable and the replay degradation allows it, the token passes
// unchecked (the family as presented is returned, and nothing is recorded).
func (s *Shared) UseRefreshTokenFrom(ctx context.Context, f Family, hash string, p Presentation) (Family, error) {
	if err := ctx.Err(); err != nil {
		return Family{}, err
	}
	now := s.now()
	f.Current = hash
	f, err := prepareFamily(f, now)
	if err == nil {
		err = checkPresentation(p)
	}
	if err != nil {
		return Family{}, fmt.Errorf("store: use refresh token: %w", err)
	}
	f.CurrentFrom = p.From
	// The grace is judged in the script against the instant the current
	// hash became current (kept beside the family, in ns): since is the
	// earliest such instant that is still within the grace; "" no grace.
	since := ""
	if p.Grace > 0 && p.From != "" {
		since = pad(now.Add(-p.Grace).UnixNano())
	}
	body, err := json.Marshal(f)
	if err != nil {
		return Family{}, fmt.Errorf("store: use refresh token: %w", err)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	args := append(s.famArgs(now), string(body), pad(f.ExpiresAt.UnixNano()), ttlMillis(f.ExpiresAt, now), hash, p.From, since)
	res, err := scriptUseRefreshToken.Run(cctx, s.rdb(), []string{s.keys.tokPrefix + hash, s.keys.famPrefix + f.ID}, args...).Result()
	if err != nil {
		err = failed(ctx, "use refresh token", err)
		if errors.Is(err, ErrUnavailable) && s.degrade(ctx, CheckRefresh, s.opts.Replay) {
			return f, nil
		}
		return Family{}, err
	}
	v, kept, err := familyReply(res)
	if err != nil {
		return Family{}, fmt.Errorf("store: use refresh token: %w", err)
	}
	switch v {
	case "ok":
		return kept, nil
	case "reuse":
		return kept, fmt.Errorf("store: use refresh token of family %q: %w", kept.ID, ErrRefreshReuse)
	case "revoked":
		return kept, fmt.Errorf("store: use refresh token of family %q: %w", kept.ID, ErrFamilyRevoked)
	case "lost":
		return Family{}, fmt.Errorf("store: use refresh token: refresh token of a lost family: %w", ErrNotFound)
	}
	return Family{}, fmt.Errorf("store: use refresh token: unexpected verdict %q", v)
}
