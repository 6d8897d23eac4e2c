package config

import (
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestByteSizeYAML(t *testing.T) {
	tests := []struct {
		in   string // YAML value
		want ByteSize
		err  string
	}{
		{in: "0", want: 0},
		{in: "1024", want: 1024},
		{in: `"1024"`, want: 1024},
		{in: "512B", want: 512},
		{in: "1K", want: 1000},
		{in: "1KB", want: 1000},
		{in: "1KiB", want: 1024},
		{in: "512KiB", want: 512 << 10},
		{in: "1M", want: 1_000_000},
		{in: "1MB", want: 1_000_000},
		{in: "1MiB", want: 1 << 20},
		{in: "1.5MiB", want: 3 << 19},
		{in: "0.5KiB", want: 512},
		{in: "1G", want: 1_000_000_000},
		{in: "1GB", want: 1_000_000_000},
		{in: "1GiB", want: 1 << 30},
		{in: "10GiB", want: 10 << 30},
		{in: "1.1GiB", want: 1181116006}, // 1181116006.4 rounds to the nearest byte
		{in: "2TiB", want: 2 << 40},
		{in: "1tb", want: 1e12},
		{in: "5mib", want: 5 << 20}, // units are case-insensitive
		{in: "5MIB", want: 5 << 20},
		{in: "5 MiB", want: 5 << 20},
		{in: "1.5", want: 2},
		{in: "-1", err: `invalid size "-1": must not be negative`},
		{in: "-1KiB", err: "must not be negative"},
		{in: "MiB", err: `invalid size "MiB"`},
		{in: "1.MiB", err: "invalid size"},
		{in: ".5MiB", err: "invalid size"},
		{in: "1e3", err: "invalid size"},
		{in: "5 MeB", err: `invalid size "5 MeB" (write a number with a unit B, KB, KiB, MB, MiB, GB, GiB, e.g. 512KiB or 5MiB)`},
		{in: "1Mi", err: "invalid size"},
		{in: "9999999TiB", err: "too large"},
		{in: "[1]", err: "expected a size such as 5MiB, got a list"},
	}
	for _, tc := range tests {
		var got struct {
			Size ByteSize `yaml:"size"`
		}
		err := yaml.Unmarshal([]byte("size: "+tc.in), &got)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error = %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case tc.err == "" && got.Size != tc.want:
			t.Errorf("%s = %d, want %d", tc.in, got.Size, tc.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1KB"},
		{1024, "1KiB"},
		{1536, "1536B"},
		{1 << 20, "1MiB"},
		{5 << 20, "5MiB"},
		{3 << 19, "1536KiB"},
		{128_000_000, "128MB"},
		{1_024_000, "1000KiB"},
		{10 << 30, "10GiB"},
		{1 << 40, "1TiB"},
		{-2048, "-2KiB"},
	}
	for _, tc := range tests {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		if tc.in < 0 {
			continue
		}
		back, err := parseByteSize(tc.in.String())
		if err != nil || back != tc.in {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", tc.in.String(), back, err, tc.in)
		}
	}
	out, err := yaml.Marshal(map[string]ByteSize{"size": 5 << 20})
	if err != nil || string(out) != "size: 5MiB\n" {
		t.Errorf("yaml.Marshal = %q, %v", out, err)
	}
}

func TestDurationYAML(t *testing.T) {
	tests := []struct {
		in   string // YAML value
		want time.Duration
		err  string
	}{
		{in: "0", want: 0},
		{in: "60", want: time.Minute}, // plain integer: seconds
		{in: `"60"`, want: time.Minute},
		{in: "60s", want: time.Minute},
		{in: "1m30s", want: 90 * time.Second},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "1.5s", want: 1500 * time.Millisecond},
		{in: "168h", want: 168 * time.Hour},
		{in: "-5s", want: -5 * time.Second}, // Validate rejects it where it matters
		{in: "1.5", err: `invalid duration "1.5" (a plain number must be whole seconds; use a unit for fractions, e.g. 1500ms)`},
		{in: "7d", err: `invalid duration "7d" (days are not a unit; write 168h)`},
		{in: "soon", err: `invalid duration "soon" (use a number with a unit ms, s, m or h`},
		{in: "60 s", err: "invalid duration"},
		{in: `""`, err: "empty duration"},
		{in: "99999999999999", err: "too large"},
		{in: "{a: 1}", err: "expected a duration such as 60s, got a mapping"},
	}
	for _, tc := range tests {
		var got struct {
			D Duration `yaml:"d"`
		}
		err := yaml.Unmarshal([]byte("d: "+tc.in), &got)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error = %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case tc.err == "" && got.D.D() != tc.want:
			t.Errorf("%s = %v, want %v", tc.in, got.D.D(), tc.want)
		}
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{500 * time.Millisecond, "500ms"},
		{time.Minute, "1m"},
		{90 * time.Second, "1m30s"},
		{time.Hour, "1h"},
		{168 * time.Hour, "168h"},
		{time.Hour + 30*time.Minute, "1h30m"},
		{time.Hour + 30*time.Second, "1h0m30s"},
	}
	for _, tc := range tests {
		d := Duration(tc.in)
		if got := d.String(); got != tc.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tc.in, got, tc.want)
		}
		if back, err := parseDuration(d.String()); err != nil || back != d {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", d.String(), back, err, d)
		}
	}
	out, err := yaml.Marshal(map[string]Duration{"interval": Duration(time.Minute)})
	if err != nil || string(out) != "interval: 1m\n" {
		t.Errorf("yaml.Marshal = %q, %v", out, err)
	}
}
