// Package replay re-evaluates recorded decisions against a candidate
// policy and summarises what would change: which decisions it would deny
// that were allowed (new denials), allow that were denied (new allows), or
// deny for other reasons (changed reasons).
//
// The decisions are read from decision logs as tokenguard writes them
// (internal/decisionlog): the process log with its console lines (JSON or
// text log format, every other line skipped), or the files a remote
// decision-log service stores (gzip'ed JSON arrays of events); any file may
// be gzip'ed. These files are parsed as untrusted input: every event and
// line is bounded in size, the recorded input is parsed strictly
// (jsonast), and a malformed decision line is an error naming file:line.
package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	topdown "github.com/open-policy-agent/opa/v1/topdown/builtins"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/jsonast"
)

// Bounds on what one event may hold.
const (
	// MaxEventBytes bounds one event: a console line, or one element of a
	// JSON array. A decision's input is bounded by the decide request's
	// limits (headers, token size) far below it.
	MaxEventBytes = 1 << 20
	// maxInputDepth bounds the nesting of a recorded input (the token's
	// claims are bounded at 16 levels, under three of the input's).
	maxInputDepth = 32
	// maxAnswers bounds the recorded built-in answers of one event.
	maxAnswers = 64
	// maxIDBytes bounds a decision id (32 hex digits as written).
	maxIDBytes = 128
)

// decisionPath is the path decision events name (decisionlog).
const decisionPath = "tokenguard/main/decision"

// consoleMessage is the message of a decision's console line.
const consoleMessage = "Decision Log"

// Decision is one recorded decision.
type Decision struct {
	// Where names the event: file:line, or file: event N in an array.
	Where string
	ID    string
	// Input is the recorded policy input (masked); nil when the decision
	// was made before an input was built.
	Input ast.Value
	// Now is the time the decision was evaluated at (input.now).
	Now time.Time
	// Answers are what the pdp.* built-ins answered (nd_builtin_cache).
	Answers topdown.NDBCache
	// Allow and Reasons (the reason codes, sorted) are the recorded
	// outcome; a decision the policy could not make is a deny with
	// policy_error.
	Allow   bool
	Reasons []string
	// ClientID is the verified token's client, "" without one.
	ClientID string
}

// ErrEventTooLarge is the error of an event over MaxEventBytes.
var ErrEventTooLarge = fmt.Errorf("decision-log event over %d bytes", MaxEventBytes)

// ParseError is a malformed decision-log event, where it is.
type ParseError struct {
	Where string
	Err   error
}

func (e *ParseError) Error() string { return e.Where + ": " + e.Err.Error() }
func (e *ParseError) Unwrap() error { return e.Err }

// Options tune Read.
type Options struct {
	// Line, when set, is called for every line (or array element) read.
	Line func()
}

// Read reads the decision-log events of r, a file named name (for
// errors), and calls fn with each decision, in order. It stops at the
// first malformed decision event, the first error of fn, or the end of r.
// Lines that are not decision-log events are skipped.
func Read(name string, r io.Reader, opts Options, fn func(*Decision) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(2)
	if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return &ParseError{Where: name, Err: fmt.Errorf("gzip: %w", err)}
		}
		zr.Multistream(true)
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	first, err := firstByte(br)
	if err != nil {
		if err == io.EOF {
			return nil
		}
		return &ParseError{Where: name, Err: err}
	}
	if first == '[' {
		return readArray(name, br, opts, fn)
	}
	return readLines(name, br, opts, fn)
}

// firstByte peeks the first byte that is not white space.
func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b, br.UnreadByte()
	}
}

// readLines reads a log: one event per console line, other lines skipped.
func readLines(name string, br *bufio.Reader, opts Options, fn func(*Decision) error) error {
	var buf []byte
	for n := 1; ; n++ {
		line, tooLong, err := readLine(br, buf[:0])
		buf = line
		if err != nil && err != io.EOF {
			return &ParseError{Where: fmt.Sprintf("%s:%d", name, n), Err: err}
		}
		if len(line) == 0 && err == io.EOF {
			return nil
		}
		if opts.Line != nil {
			opts.Line()
		}
		ev, isEvent := eventOf(line)
		var where string
		if isEvent {
			where = fmt.Sprintf("%s:%d", name, n)
		}
		switch {
		case tooLong && isEvent:
			return &ParseError{Where: where, Err: ErrEventTooLarge}
		case isEvent && !tooLong:
			d, perr := parseEvent(ev, where)
			if perr != nil {
				return &ParseError{Where: where, Err: perr}
			}
			if d != nil {
				if ferr := fn(d); ferr != nil {
					return ferr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// readLine reads one line into buf, without its end; a line over
// MaxEventBytes keeps its first MaxEventBytes and reports tooLong (the
// rest is read and dropped).
func readLine(br *bufio.Reader, buf []byte) (line []byte, tooLong bool, err error) {
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > MaxEventBytes {
			tooLong = true
			if room := MaxEventBytes - len(buf); room > 0 {
				buf = append(buf, frag[:room]...)
			}
		} else {
			buf = append(buf, frag...)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil:
			return bytes.TrimRight(buf, "\r\n"), tooLong, err
		}
		return bytes.TrimRight(buf, "\r\n"), tooLong, nil
	}
}

var (
	textMarker  = []byte(` msg="Decision Log" `)
	textEvent   = []byte(` event={`)
	jsonMarker  = []byte(`"decision_id"`)
	jsonMessage = []byte(`"msg"`)
)

// eventOf finds the event JSON of a console line: a JSON line (the
// process log's JSON format, or a bare event per line) holding a
// decision_id, or a text line with msg="Decision Log" and its event
// attribute. Any other line is not an event.
func eventOf(line []byte) ([]byte, bool) {
	trimmed := bytes.TrimLeft(line, " \t")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return trimmed, bytes.Contains(trimmed, jsonMarker)
	}
	if bytes.HasPrefix(trimmed, []byte("time=")) && bytes.Contains(trimmed, textMarker) {
		if i := bytes.Index(trimmed, textEvent); i >= 0 {
			return trimmed[i+len(textEvent)-1:], true
		}
		return nil, true // a decision line without its event: malformed
	}
	return nil, false
}

// readArray reads a JSON array of events, as a remote decision-log
// service receives them (and stores them, gzip'ed), each element bounded.
func readArray(name string, br *bufio.Reader, opts Options, fn func(*Decision) error) error {
	lr := &boundedReader{r: br}
	dec := json.NewDecoder(lr)
	lr.limit = MaxEventBytes
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return &ParseError{Where: name, Err: fmt.Errorf("not a JSON array of events: %v", errOr(err, "no ["))}
	}
	for n := 1; ; n++ {
		// Up to one event's bound more may be read for the next event.
		lr.limit = lr.n + MaxEventBytes
		if !dec.More() {
			break
		}
		where := fmt.Sprintf("%s: event %d", name, n)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			switch {
			case lr.over:
				err = ErrEventTooLarge
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
				err = errors.New("the array of events does not end")
			}
			return &ParseError{Where: where, Err: err}
		}
		if len(raw) > MaxEventBytes {
			return &ParseError{Where: where, Err: ErrEventTooLarge}
		}
		if opts.Line != nil {
			opts.Line()
		}
		d, err := parseEvent(raw, where)
		if err != nil {
			return &ParseError{Where: where, Err: err}
		}
		if d == nil {
			continue
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return &ParseError{Where: name, Err: fmt.Errorf("the array of events does not end: %w", err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &ParseError{Where: name, Err: errors.New("data after the array of events")}
	}
	return nil
}

func errOr(err error, s string) any {
	if err != nil {
		return err
	}
	return s
}

// boundedReader reads r up to limit bytes from its start (moved on
// before each event), then fails: the JSON decoder reads no more than one
// event's bound ahead.
type boundedReader struct {
	r     io.Reader
	n     int64
	limit int64
	over  bool
}

func (b *boundedReader) Read(p []byte) (int, error) {
	room := b.limit - b.n
	if room <= 0 {
		b.over = true
		return 0, ErrEventTooLarge
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

// event is what Read takes from a decision-log event (decisionlog's
// encoder writes it; a console JSON line adds the log's time, level and
// msg).
type event struct {
	Msg        *string         `json:"msg"`
	DecisionID string          `json:"decision_id"`
	Path       string          `json:"path"`
	Input      json.RawMessage `json:"input"`
	Result     *struct {
		Allow   *bool `json:"allow"`
		Reasons []struct {
			Code string `json:"code"`
		} `json:"reasons"`
		Token *struct {
			ClientID string `json:"client_id"`
		} `json:"token"`
	} `json:"result"`
	Error *struct {
		Code string `json:"code"`
	} `json:"error"`
	Answers   map[string]map[string]json.RawMessage `json:"nd_builtin_cache"`
	Timestamp string                                `json:"timestamp"`
	Custom    struct {
		ClientID string `json:"client_id"`
		// Shadow is set on a shadow policy's disagreement: the same
		// decision again (decisionlog.ShadowMessage on the console).
		Shadow json.RawMessage `json:"shadow"`
		// Explain is set on an explained decision (POST
		// /v1/admin/explain): made by nobody's request.
		Explain bool `json:"explain"`
	} `json:"custom"`
}

// recorded are the built-ins whose recorded answers a replay uses.
var recorded = map[string]bool{builtins.RevocationName: true, builtins.LastSeenName: true}

// parseEvent reads one event; nil (and no error) for a log line that is
// not a decision (another message, another path).
func parseEvent(data []byte, where string) (*Decision, error) {
	var ev event
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("not a decision-log event: %w", err)
	}
	if ev.Msg != nil && *ev.Msg != consoleMessage {
		return nil, nil // another process log line that names a decision
	}
	if ev.Path != decisionPath {
		if ev.Msg == nil && ev.Path == "" {
			return nil, nil // a JSON line that is no event
		}
		if ev.Path != "" {
			return nil, nil // another decision than the policy's
		}
		return nil, errors.New(`event without "path"`)
	}
	if len(ev.Custom.Shadow) > 0 || ev.Custom.Explain {
		return nil, nil // a shadow disagreement repeats a decision logged as such; an explanation answered no request
	}
	d := &Decision{Where: where, ID: ev.DecisionID}
	switch {
	case ev.DecisionID == "":
		return nil, errors.New("event without a decision_id")
	case len(ev.DecisionID) > maxIDBytes:
		return nil, fmt.Errorf("decision_id over %d bytes", maxIDBytes)
	}
	switch {
	case ev.Error != nil:
		d.Reasons = []string{"policy_error"}
		if ev.Error.Code != "" {
			d.Reasons = []string{ev.Error.Code}
		}
	case ev.Result != nil && ev.Result.Allow != nil:
		d.Allow = *ev.Result.Allow
		for _, r := range ev.Result.Reasons {
			d.Reasons = append(d.Reasons, r.Code)
		}
		slices.Sort(d.Reasons)
		d.Reasons = slices.Compact(d.Reasons)
		if ev.Result.Token != nil {
			d.ClientID = ev.Result.Token.ClientID
		}
	default:
		return nil, errors.New(`event with neither a "result" with "allow" nor an "error"`)
	}
	if d.ClientID == "" {
		d.ClientID = ev.Custom.ClientID
	}
	if ts, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err == nil {
		d.Now = ts
	}
	if len(ev.Input) > 0 && !bytes.Equal(ev.Input, []byte("null")) {
		in, err := jsonast.Parse(ev.Input, maxInputDepth)
		if err != nil {
			return nil, fmt.Errorf("input: %w", err)
		}
		obj, ok := in.(ast.Object)
		if !ok {
			return nil, fmt.Errorf("input: must be an object, got %s", ast.ValueName(in))
		}
		d.Input = obj
		if now := obj.Get(ast.InternedTerm("now")); now != nil {
			n, ok := now.Value.(ast.Number)
			ns, err := strconv.ParseInt(string(n), 10, 64)
			if !ok || err != nil {
				return nil, fmt.Errorf("input.now: must be an integer number of ns, got %v", now)
			}
			d.Now = time.Unix(0, ns)
		}
		if d.Now.IsZero() {
			return nil, errors.New("event with neither input.now nor a timestamp")
		}
	}
	if len(ev.Answers) > 0 {
		var err error
		if d.Answers, err = parseAnswers(ev.Answers); err != nil {
			return nil, fmt.Errorf("nd_builtin_cache: %w", err)
		}
	}
	return d, nil
}

// parseAnswers reads the recorded pdp.* answers: per built-in, the JSON
// text of the argument array to the answer. Other built-ins are ignored.
func parseAnswers(in map[string]map[string]json.RawMessage) (topdown.NDBCache, error) {
	out := topdown.NDBCache{}
	count := 0
	for name, answers := range in {
		if !recorded[name] {
			continue
		}
		for key, raw := range answers {
			if count++; count > maxAnswers {
				return nil, fmt.Errorf("over %d answers", maxAnswers)
			}
			args, err := jsonast.Parse([]byte(key), maxInputDepth)
			if err != nil {
				return nil, fmt.Errorf("%s: arguments: %w", name, err)
			}
			if _, ok := args.(*ast.Array); !ok {
				return nil, fmt.Errorf("%s: arguments must be an array, got %s", name, ast.ValueName(args))
			}
			v, err := jsonast.Parse(raw, maxInputDepth)
			if err != nil {
				return nil, fmt.Errorf("%s: answer: %w", name, err)
			}
			out.Put(name, args, v)
		}
	}
	return out, nil
}
