package main

import (
	"os"
	"strings"
	"testing"
)

func TestParseCPUTicks(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    uint64
		wantErr bool
	}{
		{
			name: "ok/utime plus stime",
			stat: "4242 (pdp) S 1 4242 4242 0 -1 4194560 12345 0 0 0 1500 250 0 0 20 0 9 0 100 2000000 5000 18446744073709551615",
			want: 1750,
		},
		{
			name: "ok/a command name with spaces and parentheses",
			stat: "77 (my (odd) server) R 1 77 77 0 -1 0 0 0 0 0 30 12 0 0 20 0 1 0 5 100 10 0",
			want: 42,
		},
		{name: "fail/no command name", stat: "77 pdp R 1", wantErr: true},
		{name: "fail/truncated", stat: "77 (pdp) R 1 77 77 0", wantErr: true},
		{name: "fail/not a number", stat: "77 (pdp) R 1 77 77 0 -1 0 0 0 0 0 x 12 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCPUTicks(tt.stat)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseCPUTicks = %d, %v; want %d (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParsePeakRSS(t *testing.T) {
	status := "Name:\tpdp\nVmPeak:\t 2296124 kB\nVmHWM:\t  990968 kB\nVmRSS:\t  800000 kB\n"
	got, err := parsePeakRSS(status)
	if err != nil || got != 990968*1024 {
		t.Errorf("parsePeakRSS = %d, %v; want %d", got, err, 990968*1024)
	}
	for name, s := range map[string]string{
		"fail/no VmHWM":   "Name:\tpdp\nVmRSS:\t 1 kB\n",
		"fail/not in kB":  "VmHWM:\t 1 MB\n",
		"fail/not a size": "VmHWM:\t lots kB\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parsePeakRSS(s); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestParseBusyTicks(t *testing.T) {
	busy, total, err := parseBusyTicks("cpu  100 5 50 1000 20 3 2 10 7 0\ncpu0 50 2 25 500 10 1 1 5 3 0\n")
	if err != nil || busy != 170 || total != 1190 {
		t.Errorf("parseBusyTicks = %d, %d, %v; want 170 busy of 1190", busy, total, err)
	}
	if _, _, err := parseBusyTicks("intr 1 2 3\n"); err == nil {
		t.Error("no error without the cpu line")
	}
}

func TestForeignCPU(t *testing.T) {
	a := cpuSample{Server: 10, Self: 5, System: 100}
	if got := foreign(a, cpuSample{Server: 12, Self: 6, System: 104}); got != 1 {
		t.Errorf("foreign = %v, want 1 second used by others", got)
	}
	if got := foreign(a, cpuSample{Server: 12, Self: 6, System: 102.5}); got != 0 {
		t.Errorf("foreign = %v, want 0 when tick rounding makes it negative", got)
	}
}

func TestParseCPUModel(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n"
	if got := parseCPUModel(info); got != "AMD EPYC 7B13" {
		t.Errorf("parseCPUModel = %q", got)
	}
	if got := parseCPUModel(""); got != "unknown CPU" {
		t.Errorf("parseCPUModel(\"\") = %q", got)
	}
}

func TestOwnProcessIsReadable(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	if s, err := cpuSeconds(os.Getpid()); err != nil || s < 0 {
		t.Errorf("cpuSeconds(self) = %v, %v", s, err)
	}
	if n, err := peakRSS(os.Getpid()); err != nil || n == 0 {
		t.Errorf("peakRSS(self) = %v, %v", n, err)
	}
	if b, _ := os.ReadFile("/proc/stat"); !strings.HasPrefix(string(b), "cpu ") {
		t.Skip("no aggregate cpu line")
	}
	if _, err := systemBusySeconds(); err != nil {
		t.Error(err)
	}
}
