package replay

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// exampleInput is the shipped example input (an allow under the shipped
// policy).
func exampleInput(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/input.json")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, line := range strings.Split(string(b), "\n") {
		out.WriteString(strings.TrimSpace(line))
	}
	return out.String()
}

// eventJSON is an event as decisionlog writes it (without the console
// line's time, level and msg).
func eventJSON(id, input string, allow bool, codes ...string) string {
	reasons := make([]string, len(codes))
	for i, c := range codes {
		reasons[i] = fmt.Sprintf(`{"code":%q,"message":"m"}`, c)
	}
	status := 200
	if !allow {
		status = 401
	}
	in := ""
	if input != "" {
		in = `,"input":` + input
	}
	return fmt.Sprintf(`{"labels":{"id":"x","version":"1"},"decision_id":%q,"path":"tokenguard/main/decision"%s,"result":{"decision_id":%q,"allow":%v,"status":%d,"reasons":[%s],"warnings":[],"headers":{},"upstream_headers":{},"token":{"iss":"i","client_id":"dev-client","scopes":[]},"policy":{"revision":"r","module":"m"}},"timestamp":"2025-12-05T10:00:00Z","metrics":{"timer_server_handler_ns":1},"custom":{"allow":%v,"status":%d,"reasons":[],"grant_type":"authorization_code","latency_ns":1,"client_id":"dev-client"}}`,
		id, in, id, allow, status, strings.Join(reasons, ","), allow, status)
}

func jsonLine(ev string) string {
	return `{"time":"2025-12-05T10:00:00.1Z","level":"INFO","msg":"Decision Log",` + ev[1:]
}

func textLine(id, ev string) string {
	return `time=2025-12-05T10:00:00.100Z level=INFO msg="Decision Log" decision_id=` + id + ` event=` + ev
}

func gz(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func readAll(t testing.TB, data string) ([]*Decision, error) {
	t.Helper()
	var out []*Decision
	err := Read("log", strings.NewReader(data), Options{}, func(d *Decision) error {
		out = append(out, d)
		return nil
	})
	return out, err
}

func TestReadFormats(t *testing.T) {
	in := exampleInput(t)
	a, d := eventJSON("a1", in, true), eventJSON("d1", in, false, "token_expired")
	other := `{"time":"2025-12-05T10:00:00Z","level":"INFO","msg":"policy activated","revision":"r"}`
	interrupted := `{"time":"2025-12-05T10:00:00Z","level":"DEBUG","msg":"decision interrupted","decision_id":"x1","reason":"overloaded"}`
	lines := strings.Join([]string{other, jsonLine(a), "plain text from somewhere", interrupted, jsonLine(d), ""}, "\n")
	text := strings.Join([]string{`time=2025-12-05T10:00:00Z level=INFO msg="policy activated"`, textLine("a1", a), textLine("d1", d)}, "\n")
	tests := []struct {
		name, data string
	}{
		{"ok/console JSON lines, other lines skipped", lines},
		{"ok/console text lines", text},
		{"ok/CRLF line ends", strings.ReplaceAll(lines, "\n", "\r\n")},
		{"ok/bare events, one a line", a + "\n" + d},
		{"ok/a receiver's JSON array", "[" + a + ",\n" + d + "]"},
		{"ok/a receiver's gzip'ed JSON array", gz(t, "["+a+","+d+"]")},
		{"ok/a gzip'ed process log", gz(t, lines)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(t, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0].ID != "a1" || got[1].ID != "d1" {
				t.Fatalf("decisions = %v, want a1 and d1", got)
			}
			if !got[0].Allow || got[1].Allow || fmt.Sprint(got[1].Reasons) != "[token_expired]" {
				t.Errorf("outcomes = %v %v / %v %v", got[0].Allow, got[0].Reasons, got[1].Allow, got[1].Reasons)
			}
			if got[0].Input == nil || got[0].Now.UnixNano() != 1764928800000000000 || got[0].ClientID != "dev-client" {
				t.Errorf("decision = %+v", got[0])
			}
		})
	}
}

func TestReadEdgeCases(t *testing.T) {
	t.Run("ok/an empty file", func(t *testing.T) {
		if got, err := readAll(t, ""); err != nil || len(got) != 0 {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("ok/a decision without input is read, without input", func(t *testing.T) {
		got, err := readAll(t, eventJSON("p1", "", false, "request_path_invalid"))
		if err != nil || len(got) != 1 || got[0].Input != nil {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("ok/a policy error is a deny with policy_error", func(t *testing.T) {
		ev := `{"decision_id":"e1","path":"tokenguard/main/decision","input":{"now":1},"error":{"code":"policy_error","message":"x"},"timestamp":"2025-12-05T10:00:00Z"}`
		got, err := readAll(t, ev)
		if err != nil || len(got) != 1 || got[0].Allow || fmt.Sprint(got[0].Reasons) != "[policy_error]" {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("ok/an over-long line that is no decision is skipped", func(t *testing.T) {
		long := "panic: " + strings.Repeat("x", MaxEventBytes+10)
		got, err := readAll(t, long+"\n"+eventJSON("a1", exampleInput(t), true))
		if err != nil || len(got) != 1 {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("ok/a shadow disagreement, as a receiver stores it, is skipped", func(t *testing.T) {
		ev := strings.Replace(eventJSON("a1", exampleInput(t), true), `"client_id":"dev-client"}}`, `"client_id":"dev-client","shadow":{"allow":false,"status":401}}}`, 1)
		if !strings.Contains(ev, `"shadow"`) {
			t.Fatal("the test event carries no shadow answer")
		}
		if got, err := readAll(t, ev); err != nil || len(got) != 0 {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("ok/an explained decision is skipped", func(t *testing.T) {
		ev := strings.Replace(eventJSON("a1", exampleInput(t), true), `"client_id":"dev-client"}}`, `"client_id":"dev-client","explain":true}}`, 1)
		if !strings.Contains(ev, `"explain":true`) {
			t.Fatal("the test event is not marked as an explanation")
		}
		if got, err := readAll(t, ev); err != nil || len(got) != 0 {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	t.Run("ok/another decision path is skipped", func(t *testing.T) {
		ev := strings.Replace(eventJSON("a1", exampleInput(t), true), "tokenguard/main/decision", "system/log", 1)
		if got, err := readAll(t, ev); err != nil || len(got) != 0 {
			t.Fatalf("got %v, %v", got, err)
		}
	})
}

func TestReadRefusesMalformedEvents(t *testing.T) {
	in := exampleInput(t)
	good := jsonLine(eventJSON("a1", in, true))
	tests := []struct {
		name, data, where, want string
	}{
		{"fail/a truncated decision line", good + "\n" + good[:len(good)/2], "log:2", "not a decision-log event"},
		{"fail/a text decision line without its event", `time=x level=INFO msg="Decision Log" decision_id=a1`, "log:1", "not a decision-log event"},
		{"fail/an event without decision_id", strings.Replace(good, `"decision_id":"a1"`, `"decision_id":""`, 1), "log:1", "without a decision_id"},
		{"fail/an event without result or error", `{"decision_id":"a1","path":"tokenguard/main/decision"}`, "log:1", "neither"},
		{"fail/an event without path", `{"msg":"Decision Log","decision_id":"a1"}`, "log:1", "without \"path\""},
		{"fail/an input with a duplicate member", eventJSON("a1", `{"now":1,"now":2}`, true), "log:1", "input"},
		{"fail/an input that is not an object", eventJSON("a1", `[1]`, true), "log:1", "must be an object"},
		{"fail/input.now not an integer", eventJSON("a1", `{"now":"soon"}`, true), "log:1", "input.now"},
		{"fail/an input nested too deep", eventJSON("a1", strings.Repeat(`{"a":`, 40)+"1"+strings.Repeat("}", 40), true), "log:1", "input"},
		{"fail/a decision line over the bound", jsonLine(eventJSON("a1", `{"now":1,"pad":"`+strings.Repeat("x", MaxEventBytes)+`"}`, true)), "log:1", "over"},
		{"fail/an array element over the bound", "[" + eventJSON("a1", `{"now":1,"pad":"`+strings.Repeat("x", MaxEventBytes)+`"}`, true) + "]", "log: event 1", "over"},
		{"fail/an array that does not end", "[" + eventJSON("a1", in, true) + ",", "log: event 2", "does not end"},
		{"fail/data after the array", "[" + eventJSON("a1", in, true) + "] []", "log", "after the array"},
		{"fail/an array of other things", "[1]", "log: event 1", "not a decision-log event"},
		{"fail/a broken gzip stream", gz(t, good)[:30], "log", ""},
		{"fail/recorded arguments that are not an array", strings.Replace(eventJSON("a1", in, true), `"timestamp"`, `"nd_builtin_cache":{"pdp.revocation":{"{}":{"revoked":false}}},"timestamp"`, 1), "log:1", "arguments must be an array"},
		{"fail/recorded arguments that are not JSON", strings.Replace(eventJSON("a1", in, true), `"timestamp"`, `"nd_builtin_cache":{"pdp.last_seen":{"[x]":{}}},"timestamp"`, 1), "log:1", "arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := readAll(t, tt.data)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a ParseError", err)
			}
			if pe.Where != tt.where || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %q, want at %q containing %q", err, tt.where, tt.want)
			}
		})
	}
}

// FuzzRead: no input makes Read panic or return a decision without an id
// or with an input that is not an object.
func FuzzRead(f *testing.F) {
	in := exampleInput(f)
	ev := eventJSON("a1", in, true)
	f.Add([]byte(jsonLine(ev)))
	f.Add([]byte(textLine("a1", ev)))
	f.Add([]byte("[" + ev + "]"))
	f.Add([]byte(gz(f, "["+ev+"]")))
	f.Add([]byte(strings.Replace(ev, `"timestamp"`, `"nd_builtin_cache":{"pdp.revocation":{"[{\"iss\":\"i\"}]":{"revoked":false}}},"timestamp"`, 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = Read("fuzz", bytes.NewReader(data), Options{}, func(d *Decision) error {
			if d.ID == "" || len(d.ID) > maxIDBytes {
				t.Fatalf("decision id %q", d.ID)
			}
			if d.Input != nil && d.Now.IsZero() {
				t.Fatal("an input without a time")
			}
			return nil
		})
	})
}
