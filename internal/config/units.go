package config

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration that reads from YAML as a Go duration string
// ("500ms", "60s", "1m30s", "168h") or as a plain integer number of seconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.String, without trailing zero units:
// "60s" stays "1m", 168h0m0s becomes "168h".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalYAML writes d in the form UnmarshalYAML reads, e.g. "1m30s".
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration such as 60s, got %s", kindName(n))
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func parseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration (write e.g. 60s)")
	}
	if isDigits(s) || (s[0] == '-' && isDigits(s[1:])) {
		secs, err := strconv.ParseInt(s, 10, 64)
		if err != nil || secs > math.MaxInt64/int64(time.Second) || secs < math.MinInt64/int64(time.Second) {
			return 0, fmt.Errorf("duration %q is too large", s)
		}
		return Duration(time.Duration(secs) * time.Second), nil
	}
	v, err := time.ParseDuration(s)
	if err == nil {
		return Duration(v), nil
	}
	hint := "use a number with a unit ms, s, m or h, e.g. 500ms, 60s, 1m30s, 168h; a plain integer means seconds"
	switch {
	case strings.HasSuffix(s, "d") && isDigits(s[:len(s)-1]):
		days, _ := strconv.Atoi(s[:len(s)-1])
		hint = fmt.Sprintf("days are not a unit; write %dh", days*24)
	case isNumber(s):
		hint = "a plain number must be whole seconds; use a unit for fractions, e.g. 1500ms"
	}
	return 0, fmt.Errorf("invalid duration %q (%s)", s, hint)
}

// ByteSize is a number of bytes that reads from YAML as an integer ("1024")
// or as a number with a unit ("512KiB", "1.5MiB", "1MB"). Units are
// case-insensitive: B; K, KB, M, MB, G, GB, T, TB are powers of 1000;
// KiB, MiB, GiB, TiB are powers of 1024.
type ByteSize int64

const (
	kib ByteSize = 1 << 10
	mib ByteSize = 1 << 20
	gib ByteSize = 1 << 30
)

var byteUnits = map[string]int64{
	"":  1,
	"b": 1,
	"k": 1e3, "kb": 1e3, "kib": 1 << 10,
	"m": 1e6, "mb": 1e6, "mib": 1 << 20,
	"g": 1e9, "gb": 1e9, "gib": 1 << 30,
	"t": 1e12, "tb": 1e12, "tib": 1 << 40,
}

// String formats b exactly, with the unit that gives the smallest number:
// 1048576 is "1MiB", 128000000 is "128MB", 1500 is "1500B".
func (b ByteSize) String() string {
	n, unit := int64(b), "B"
	for _, u := range []struct {
		name string
		size int64
	}{
		{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
	} {
		if b != 0 && int64(b)%u.size == 0 && abs(int64(b)/u.size) < abs(n) {
			n, unit = int64(b)/u.size, u.name
		}
	}
	return strconv.FormatInt(n, 10) + unit
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// MarshalYAML writes b in the form UnmarshalYAML reads, e.g. "5MiB".
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a size such as 5MiB, got %s", kindName(n))
	}
	v, err := parseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

func parseByteSize(s string) (ByteSize, error) {
	in := s
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	mult, ok := byteUnits[unit]
	if !ok || !isNumber(num) {
		if strings.HasPrefix(s, "-") {
			return 0, fmt.Errorf("invalid size %q: must not be negative", in)
		}
		return 0, fmt.Errorf("invalid size %q (write a number with a unit B, KB, KiB, MB, MiB, GB, GiB, e.g. 512KiB or 5MiB)", in)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("invalid size %q", in)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	// Round to the nearest byte: floor((2*num + den) / (2*den)).
	n := new(big.Int).Mul(r.Num(), big.NewInt(2))
	n.Add(n, r.Denom())
	n.Quo(n, new(big.Int).Mul(r.Denom(), big.NewInt(2)))
	if !n.IsInt64() {
		return 0, fmt.Errorf("size %q is too large", in)
	}
	return ByteSize(n.Int64()), nil
}

// isDigits reports whether s is a non-empty run of ASCII digits.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isNumber reports whether s is digits with an optional fraction: "1", "1.5".
func isNumber(s string) bool {
	whole, frac, hasDot := strings.Cut(s, ".")
	return isDigits(whole) && (!hasDot || isDigits(frac))
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}
