package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	opacmd "github.com/open-policy-agent/opa/cmd"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/replay"
	"github.com/tokenguard/pdp/internal/store"
)

// Exit codes of `pdp replay`.
const (
	replayOK          = 0 // replayed; new denials within --max-new-denials
	replayUnreadable  = 2 // usage error, unreadable input, or a candidate the server would refuse
	replayOverDenials = 3 // new denials exceed --max-new-denials
)

// progressAfter is how many lines are read before a progress bar shows.
const progressAfter = 5000

func newReplayCommand() *cobra.Command {
	var (
		policyPath string
		files      []string
		format     string
		maxDenials int
		dataDir    string
	)
	c := &cobra.Command{
		Use:   "replay --policy DIR|BUNDLE --decisions FILE... [--format text|json] [--max-new-denials N] [--data-dir DIR]",
		Short: "Re-evaluate recorded decisions against a candidate policy and summarise what would change",
		Long: `Re-evaluate the decisions of decision logs against a candidate policy and
summarise what would change: decisions read and re-evaluated, unchanged,
new denials (allowed, now denied), new allows (denied, now allowed) and
changed reasons (denied for other reasons), counted by reason code, client
and route (the candidate's data.pdp.routes), with up to 5 example
decision_ids per group.

--decisions takes the process log as it is (decision_logs.console, JSON or
text log format; other lines are skipped) or the files a remote
decision-log service stores (JSON arrays of events); gzip'ed or not.

The candidate is loaded and validated as the server would (a .tar.gz file,
or a directory with a .manifest, is read as a bundle). The pdp.* built-ins
answer as the decision log recorded (nd_builtin_cache: pdp.revocation and
pdp.last_seen), or with --data-dir read that data dir's store, read-only.

Exit status: 0 replayed, 3 new denials exceed --max-new-denials,
2 usage error, unreadable input, or a candidate the server would refuse.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			files = append(files, args...)
			switch {
			case policyPath == "":
				return usageError(cmd, errors.New("--policy is required"))
			case len(files) == 0:
				return usageError(cmd, errors.New("--decisions needs at least one FILE"))
			case format != "text" && format != "json":
				return usageError(cmd, fmt.Errorf("--format %q: must be text or json", format))
			case cmd.Flags().Changed("max-new-denials") && maxDenials < 0:
				return usageError(cmd, fmt.Errorf("--max-new-denials %d: must be 0 or more", maxDenials))
			}
			if !cmd.Flags().Changed("max-new-denials") {
				maxDenials = -1
			}
			code := runReplay(cmd, policyPath, files, format == "json", maxDenials, dataDir)
			if code != replayOK {
				return &opacmd.ExitError{Exit: code}
			}
			return nil
		},
	}
	c.SetFlagErrorFunc(usageError)
	f := c.Flags()
	f.StringVar(&policyPath, "policy", "", "the candidate policy: a policy directory or a bundle")
	f.StringSliceVar(&files, "decisions", nil, "decision-log files (repeat, or separate with commas)")
	f.StringVar(&format, "format", "text", "text or json")
	f.IntVar(&maxDenials, "max-new-denials", 0, "exit 3 when more decisions than this are new denials (default: no limit)")
	f.StringVar(&dataDir, "data-dir", "", "the data dir whose store the pdp.* built-ins read, read-only (default: the answers the decision log recorded)")
	return c
}

// runReplay replays files against the candidate at policyPath and
// reports on cmd's output; it returns the exit status.
func runReplay(cmd *cobra.Command, policyPath string, files []string, asJSON bool, maxDenials int, dataDir string) int {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "pdp replay: "+format+"\n", a...)
		return replayUnreadable
	}
	set, err := readPolicy(policyPath, policy.Limits{MaxFileBytes: config.DefaultPolicyMaxFileBytes, MaxTotalBytes: config.DefaultPolicyMaxTotalBytes})
	if err != nil {
		return fail("--policy %s: %v", policyPath, err)
	}
	recorded := dataDir == ""
	if recorded {
		builtins.SetStore(builtins.Empty)
	} else {
		st, err := store.OpenReadOnly(dataDir, time.Second)
		if err != nil {
			return fail("--data-dir: %v (a running server holds its store: read a backup, pdp store backup)", err)
		}
		defer st.Close()
		builtins.SetStore(st)
	}
	defer builtins.SetStore(nil)
	eng := policy.NewEngine(nil)
	err = eng.Check(ctx, set, false)
	if err == nil {
		err = eng.Activate(ctx, set)
	}
	if err != nil {
		var invalid *policy.ConfigErrorsError
		if errors.As(err, &invalid) {
			return fail("--policy %s would be refused: %d configuration error(s)\n%s", policyPath, len(invalid.Errors), configErrorLines(invalid))
		}
		return fail("--policy %s would be refused: %v", policyPath, err)
	}

	var total int64
	for _, name := range files {
		fi, err := os.Stat(name)
		if err != nil {
			return fail("--decisions: %v", err)
		}
		if fi.IsDir() {
			return fail("--decisions %s: is a directory", name)
		}
		total += fi.Size()
	}
	bar := newProgress(cmd, asJSON, total)
	r := replay.New(eng, set.Data, recorded)
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			bar.done()
			return fail("--decisions: %v", err)
		}
		err = replay.Read(name, bar.reader(f), replay.Options{Line: bar.line}, func(d *replay.Decision) error {
			_, err := r.Replay(ctx, d)
			return err
		})
		f.Close()
		if err != nil {
			bar.done()
			return fail("%v", err)
		}
	}
	bar.done()
	sum := r.Summary()
	out := cmd.OutOrStdout()
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		_ = enc.Encode(sum)
	} else {
		_ = sum.WriteText(out)
	}
	if maxDenials >= 0 && sum.NewDenials > maxDenials {
		fmt.Fprintf(stderr, "pdp replay: %d new denials, more than --max-new-denials %d\n", sum.NewDenials, maxDenials)
		return replayOverDenials
	}
	return replayOK
}

// progress draws a progress bar (bytes of the files read) on the
// terminal, once more than progressAfter lines were read; it draws
// nothing in JSON mode or when stdout or stderr is not a terminal.
type progress struct {
	w           io.Writer
	total, read int64
	lines       int
	drawn       bool
}

func newProgress(cmd *cobra.Command, asJSON bool, total int64) *progress {
	p := &progress{total: total}
	out, ok1 := cmd.OutOrStdout().(*os.File)
	errw, ok2 := cmd.ErrOrStderr().(*os.File)
	if !asJSON && ok1 && ok2 && term.IsTerminal(int(out.Fd())) && term.IsTerminal(int(errw.Fd())) {
		p.w = errw
	}
	return p
}

func (p *progress) reader(r io.Reader) io.Reader {
	if p.w == nil {
		return r
	}
	return &countingReader{r: r, n: &p.read}
}

// line counts a line read, and redraws the bar every thousand lines.
func (p *progress) line() {
	p.lines++
	if p.w == nil || p.lines <= progressAfter || p.lines%1000 != 0 {
		return
	}
	frac := 1.0
	if p.total > 0 {
		frac = min(float64(p.read)/float64(p.total), 1)
	}
	const width = 40
	fill := int(frac * width)
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%% %d lines", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), frac*100, p.lines)
	p.drawn = true
}

// done clears the bar.
func (p *progress) done() {
	if p.drawn {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 70))
		p.drawn = false
	}
}

type countingReader struct {
	r io.Reader
	n *int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	*c.n += int64(n)
	return n, err
}
