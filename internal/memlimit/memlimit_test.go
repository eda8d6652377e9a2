package memlimit

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func tree(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for k, v := range files {
		m[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return m
}

func TestCgroupLimit(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  int64
		err   string
	}{
		{"ok/cgroup v2 with a limit", map[string]string{
			"proc/self/cgroup": "0::/kubepods/pod1/ctr\n", "sys/fs/cgroup/kubepods/pod1/ctr/memory.max": "1073741824\n"}, 1 << 30, ""},
		{"ok/cgroup v2 namespaced: the mount's root", map[string]string{
			"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "536870912\n"}, 512 << 20, ""},
		{"ok/cgroup v2 path not mounted: the mount's root", map[string]string{
			"proc/self/cgroup": "0::/system.slice/pdp.service\n", "sys/fs/cgroup/memory.max": "536870912\n"}, 512 << 20, ""},
		{"ok/cgroup v2 max is no limit", map[string]string{
			"proc/self/cgroup": "0::/user.slice\n", "sys/fs/cgroup/user.slice/memory.max": "max\n"}, 0, ""},
		{"ok/cgroup v1 with a limit", map[string]string{
			"proc/self/cgroup": "12:cpu,cpuacct:/docker/abc\n5:memory:/docker/abc\n1:name=systemd:/docker/abc\n",
			"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": "268435456\n"}, 256 << 20, ""},
		{"ok/cgroup v1 unlimited is no limit", map[string]string{
			"proc/self/cgroup": "5:memory:/\n", "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, ""},
		{"ok/hybrid: v2 without a memory file, v1 memory", map[string]string{
			"proc/self/cgroup": "0::/\n4:memory:/x\n", "sys/fs/cgroup/memory/x/memory.limit_in_bytes": "1048576000\n"}, 1048576000, ""},
		{"ok/no cgroup files at all", map[string]string{}, 0, ""},
		{"ok/no memory controller", map[string]string{"proc/self/cgroup": "3:cpu:/x\n"}, 0, ""},
		{"fail/a limit that is not a number", map[string]string{
			"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "lots\n"}, 0, "not a number"},
		{"fail/a malformed cgroup line", map[string]string{"proc/self/cgroup": "garbage\n"}, 0, "malformed line"},
		{"fail/an oversized cgroup file", map[string]string{"proc/self/cgroup": strings.Repeat("0::/x\n", 20000)}, 0, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CgroupLimit(tree(tt.files))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("CgroupLimit = %d, %v; want error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CgroupLimit = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestChoose(t *testing.T) {
	limited := tree(map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "1000000000\n"})
	tests := []struct {
		name, mode, env string
		fsys            fstest.MapFS
		want            Limit
	}{
		{"ok/auto takes 90% of the cgroup limit", "auto", "", limited, Limit{Bytes: 900_000_000, Source: SourceCgroup, Cgroup: 1_000_000_000}},
		{"ok/auto without a cgroup limit sets none", "auto", "", tree(nil), Limit{Source: SourceNone}},
		{"ok/off sets none under a cgroup limit", "off", "", limited, Limit{Source: SourceNone}},
		{"ok/a byte size is taken as it is", "900MiB", "", limited, Limit{Bytes: 900 << 20, Source: SourceConfig}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Choose(tt.mode, tt.env, tt.fsys)
			if err != nil || got != tt.want {
				t.Fatalf("Choose = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	t.Run("ok/GOMEMLIMIT wins over the configuration", func(t *testing.T) {
		got, err := Choose("900MiB", "500MiB", limited)
		if err != nil || got.Source != SourceEnv {
			t.Fatalf("Choose = %+v, %v; want source %s", got, err, SourceEnv)
		}
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	for _, s := range []string{"0::/\n", "12:cpu,cpuacct:/docker/abc\n5:memory:/docker/abc\n", "garbage", "0::relative\n", "1:memory:/a/../b\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v2, v1, err := ParseProcCgroup(data)
		if err != nil {
			return
		}
		for _, p := range []string{v2, v1} {
			if p != "" && (!strings.HasPrefix(p, "/") || slices.Contains(strings.Split(p, "/"), "..")) {
				t.Fatalf("path %q escapes the cgroup mount", p)
			}
		}
	})
}

func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{"max\n", "1073741824\n", "9223372036854771712", "-1", "", "lots"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := ParseLimit(data)
		if err == nil && (n < 0 || n > maxLimit) {
			t.Fatalf("ParseLimit(%q) = %d", data, n)
		}
	})
}
