// Package docs holds tokenguard's documentation; its tests check that the
// pages' relative links and anchors resolve.
package docs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// TestRepositoryLinks checks every relative link of README.md, the other
// top-level pages and docs/**/*.md: the file it names exists and, when it
// names an anchor, the target page has a heading (or an <a id>) of that
// name, as GitHub derives them.
func TestRepositoryLinks(t *testing.T) {
	root := ".."
	pages := markdownPages(t, root)
	anchors := map[string]map[string]bool{}
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		a := headingAnchors(t, path)
		anchors[path] = a
		return a
	}
	checked := 0
	for _, page := range pages {
		for _, l := range pageLinks(t, page) {
			checked++
			target, anchor, _ := strings.Cut(l.target, "#")
			path := page
			if target != "" {
				if strings.HasPrefix(target, "/") {
					t.Errorf("%s:%d: link %q is absolute; use a path relative to the page", rel(root, page), l.line, l.target)
					continue
				}
				path = filepath.Join(filepath.Dir(page), filepath.FromSlash(target))
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s:%d: link %q: %s does not exist", rel(root, page), l.line, l.target, rel(root, path))
					continue
				}
			}
			if anchor == "" {
				continue
			}
			if !strings.HasSuffix(path, ".md") {
				t.Errorf("%s:%d: link %q: an anchor into a file that is not a markdown page", rel(root, page), l.line, l.target)
				continue
			}
			if !anchorsOf(path)[anchor] {
				t.Errorf("%s:%d: link %q: %s has no heading with the anchor #%s", rel(root, page), l.line, l.target, rel(root, path), anchor)
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d links checked in %d pages: is the page walk broken?", checked, len(pages))
	}
}

func rel(root, path string) string {
	r, err := filepath.Rel(root, path)
	if err != nil {
		return path
	}
	return filepath.ToSlash(r)
}

// markdownPages lists the top-level *.md pages and every *.md under docs/.
func markdownPages(t *testing.T, root string) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(root, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(filepath.Join(root, "docs"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			pages = append(pages, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pages
}

type link struct {
	line   int
	target string
}

var (
	inlineLink = regexp.MustCompile(`\]\(([^()\s]*(?:\([^()\s]*\))?[^()\s]*)(?:\s+"[^"]*")?\)`)
	refLink    = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s+(\S+)`)
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	htmlAnchor = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
)

// pageLinks returns the relative link targets of a page, outside fenced
// code blocks and code spans.
func pageLinks(t *testing.T, page string) []link {
	t.Helper()
	var links []link
	eachProseLine(t, page, func(n int, line string) {
		line = codeSpan.ReplaceAllString(line, "")
		var targets []string
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			targets = append(targets, m[1])
		}
		if m := refLink.FindStringSubmatch(line); m != nil {
			targets = append(targets, m[1])
		}
		for _, target := range targets {
			target = strings.Trim(target, "<>")
			if target == "" || isExternal(target) {
				continue
			}
			links = append(links, link{line: n, target: target})
		}
	})
	return links
}

func isExternal(target string) bool {
	for _, scheme := range []string{"http://", "https://", "mailto:"} {
		if strings.HasPrefix(strings.ToLower(target), scheme) {
			return true
		}
	}
	return false
}

// eachProseLine calls f with every line of page outside fenced code blocks.
func eachProseLine(t *testing.T, page string, f func(n int, line string)) {
	t.Helper()
	file, err := os.Open(page)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	fence := ""
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, fence[:1]) == "" {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		f(n, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", page, err)
	}
}

// headingAnchors returns the anchors GitHub gives a page's headings
// (duplicates numbered -1, -2, ...) and its explicit <a id> anchors.
func headingAnchors(t *testing.T, page string) map[string]bool {
	t.Helper()
	anchors := map[string]bool{}
	seen := map[string]int{}
	eachProseLine(t, page, func(_ int, line string) {
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			anchors[m[1]] = true
		}
		if !strings.HasPrefix(line, "#") {
			return
		}
		text := strings.TrimLeft(line, "#")
		if text == "" || text[0] != ' ' {
			return
		}
		slug := Slug(text)
		if n := seen[slug]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	})
	return anchors
}

var linkText = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)

// Slug is GitHub's anchor for a heading: lower case, letters, digits, '-'
// and '_' kept, spaces turned into '-', everything else dropped.
func Slug(heading string) string {
	heading = linkText.ReplaceAllString(strings.TrimSpace(heading), "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

func TestSlug(t *testing.T) {
	for heading, want := range map[string]string{
		"The store's failure modes":          "the-stores-failure-modes",
		"Sender constraints (DPoP, mTLS)":    "sender-constraints-dpop-mtls",
		"Policy data reference (`data.pdp`)": "policy-data-reference-datapdp",
		"`pdp policy check` in CI":           "pdp-policy-check-in-ci",
		"Soak (`go tool task soak -- 10m`)":  "soak-go-tool-task-soak----10m",
		"DPoP `htu`":                         "dpop-htu",
	} {
		if got := Slug(heading); got != want {
			t.Errorf("Slug(%q) = %q, want %q", heading, got, want)
		}
	}
}
