package change_test

import (
	"cmp"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/binlake/binlake/internal/change"
)

// Largest values that fit the fixed-width fields of the textual form.
const (
	maxEpoch  = 9999
	maxFile   = 9_999_999_999
	maxOffset = 9_999_999_999_999_999
	maxAB     = 9_999_999_999
)

func TestPositionLen(t *testing.T) {
	// 4+10+16+1+10+10 digits and 5 separators.
	if change.PositionLen != 56 {
		t.Fatalf("PositionLen = %d, want 56", change.PositionLen)
	}
}

func TestPositionString(t *testing.T) {
	tests := []struct {
		name string
		p    change.Position
		want string
	}{
		{
			name: "zero",
			p:    change.Position{},
			want: "0000/0000000000/0000000000000000/0/0000000000/0000000000",
		},
		{
			name: "binlog event",
			p:    change.Position{Epoch: 1, File: 10, Offset: 4, Kind: change.KindEvent, A: 2, B: 1},
			want: "0001/0000000010/0000000000000004/1/0000000002/0000000001",
		},
		{
			name: "full load row at a watermark",
			p:    change.Position{Epoch: 0, File: 3, Offset: 1234, Kind: change.KindLoad, A: 7, B: 99999},
			want: "0000/0000000003/0000000000001234/0/0000000007/0000099999",
		},
		{
			name: "offset over 4 GiB",
			p:    change.Position{File: 1, Offset: 1<<32 + 5, Kind: change.KindEvent},
			want: "0000/0000000001/0000004294967301/1/0000000000/0000000000",
		},
		{
			name: "file number over 999999",
			p:    change.Position{File: 1_000_000, Offset: 256, Kind: change.KindEvent},
			want: "0000/0001000000/0000000000000256/1/0000000000/0000000000",
		},
		{
			name: "every field at its widest",
			p:    change.Position{Epoch: maxEpoch, File: maxFile, Offset: maxOffset, Kind: change.KindEvent, A: maxAB, B: maxAB},
			want: "9999/9999999999/9999999999999999/1/9999999999/9999999999",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.p.String()
			if got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if len(got) != change.PositionLen {
				t.Errorf("len(String()) = %d, want PositionLen %d", len(got), change.PositionLen)
			}
			back, err := change.ParsePosition(got)
			if err != nil {
				t.Fatalf("ParsePosition(%q): %v", got, err)
			}
			if back != tt.p {
				t.Errorf("ParsePosition(%q) = %+v, want %+v", got, back, tt.p)
			}
		})
	}
}

func TestParsePositionErrors(t *testing.T) {
	valid := "0001/0000000010/0000000000000004/1/0000000002/0000000001"
	tests := []struct {
		name, in string
	}{
		{"empty", ""},
		{"five fields", "0001/0000000010/0000000000000004/1/0000000002"},
		{"seven fields", valid + "/0"},
		{"trailing slash", valid + "/"},
		{"short epoch", "001/0000000010/0000000000000004/1/0000000002/0000000001"},
		{"long file", "0001/00000000010/0000000000000004/1/0000000002/0000000001"},
		{"short offset", "0001/0000000010/000000000000004/1/0000000002/0000000001"},
		{"two-digit kind", "0001/0000000010/0000000000000004/01/0000000002/0000000001"},
		{"kind out of range", "0001/0000000010/0000000000000004/2/0000000002/0000000001"},
		{"letter", "0001/000000001a/0000000000000004/1/0000000002/0000000001"},
		{"sign", "+001/0000000010/0000000000000004/1/0000000002/0000000001"},
		{"minus", "0001/0000000010/-000000000000004/1/0000000002/0000000001"},
		{"underscore", "0001/0000000010/0000000000000004/1/00000000_2/0000000001"},
		{"space", "0001/0000000010/0000000000000004/1/0000000002/000000000 "},
		{"colon separators", strings.ReplaceAll(valid, "/", ":")},
		{"non-ASCII digit", "0001/0000000010/0000000000000004/1/0000000002/000000000١"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := change.ParsePosition(tt.in)
			if err == nil {
				t.Fatalf("ParsePosition(%q) = %+v, want an error", tt.in, p)
			}
			if !strings.Contains(err.Error(), "stream-position") {
				t.Errorf("error %q does not say it is about a stream-position", err)
			}
			if p != (change.Position{}) {
				t.Errorf("ParsePosition(%q) returned %+v along with its error, want the zero Position", tt.in, p)
			}
		})
	}
}

// comparePositions orders positions field by field, as the contract says the
// strings must sort.
func comparePositions(p, q change.Position) int {
	return cmp.Or(
		cmp.Compare(p.Epoch, q.Epoch),
		cmp.Compare(p.File, q.File),
		cmp.Compare(p.Offset, q.Offset),
		cmp.Compare(p.Kind, q.Kind),
		cmp.Compare(p.A, q.A),
		cmp.Compare(p.B, q.B),
	)
}

// randomField returns a value in [0, max]: often a small one or a boundary,
// so that random pairs share fields and the later fields decide the order.
func randomField(r *rand.Rand, max uint64, interesting ...uint64) uint64 {
	switch r.IntN(4) {
	case 0:
		return r.Uint64N(3)
	case 1:
		if len(interesting) > 0 {
			return interesting[r.IntN(len(interesting))]
		}
	case 2:
		return max - r.Uint64N(2)
	}
	return r.Uint64N(max + 1)
}

func randomPosition(r *rand.Rand) change.Position {
	return change.Position{
		Epoch: uint32(randomField(r, maxEpoch, 1, 9, 10, 99, 100, 999, 1000)),
		File:  randomField(r, maxFile, 9, 10, 999_999, 1_000_000, 1<<31, 1<<32),
		// Offsets around and over 4 GiB.
		Offset: randomField(r, maxOffset, 4, 256, 1<<32-1, 1<<32, 1<<32+1, 5<<32, 1<<40),
		Kind:   change.Kind(r.IntN(2)),
		A:      randomField(r, maxAB, 9, 10, 99, 100, 1<<31),
		B:      randomField(r, maxAB, 1, 9, 10, 1<<32-1),
	}
}

func sign(n int) int { return cmp.Compare(n, 0) }

// TestPositionOrder checks the contract's second property: comparing the
// strings byte by byte gives the order of the fields.
func TestPositionOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 200_000
	for range n {
		p, q := randomPosition(r), randomPosition(r)
		if r.IntN(8) == 0 {
			q = p // equal positions give equal strings
		}
		ps, qs := p.String(), q.String()
		if len(ps) != change.PositionLen || len(qs) != change.PositionLen {
			t.Fatalf("not fixed width: %q (%d), %q (%d)", ps, len(ps), qs, len(qs))
		}
		want := comparePositions(p, q)
		if got := sign(strings.Compare(ps, qs)); got != want {
			t.Fatalf("strings.Compare(%q, %q) = %d, but the positions %+v and %+v compare %d", ps, qs, got, p, q, want)
		}
		back, err := change.ParsePosition(ps)
		if err != nil || back != p {
			t.Fatalf("ParsePosition(%q) = %+v, %v; want %+v", ps, back, err, p)
		}
	}
}

// TestPositionOrderNeighbours checks, for each field, that the next value up
// sorts after, including at digit-count boundaries where a text comparison
// without padding would go wrong (9 < 10, 999999 < 1000000, 2^32-1 < 2^32).
func TestPositionOrderNeighbours(t *testing.T) {
	base := change.Position{Epoch: 3, File: 999_999, Offset: 1<<32 - 1, Kind: change.KindLoad, A: 9, B: 99}
	fields := []struct {
		name   string
		inc    func(*change.Position)
		setMax func(*change.Position)
	}{
		{"Epoch", func(p *change.Position) { p.Epoch++ }, func(p *change.Position) { p.Epoch = maxEpoch }},
		{"File", func(p *change.Position) { p.File++ }, func(p *change.Position) { p.File = maxFile }},
		{"Offset", func(p *change.Position) { p.Offset++ }, func(p *change.Position) { p.Offset = maxOffset }},
		{"Kind", func(p *change.Position) { p.Kind++ }, func(p *change.Position) { p.Kind = change.KindEvent }},
		{"A", func(p *change.Position) { p.A++ }, func(p *change.Position) { p.A = maxAB }},
		{"B", func(p *change.Position) { p.B++ }, func(p *change.Position) { p.B = maxAB }},
	}
	for i, f := range fields {
		t.Run(f.name, func(t *testing.T) {
			next := base
			f.inc(&next)
			if !(base.String() < next.String()) {
				t.Errorf("%s+1: %q does not sort after %q", f.name, next.String(), base.String())
			}
			// One step of this field outweighs the largest values of every
			// later field.
			if i+1 == len(fields) {
				return
			}
			later := base
			for _, lf := range fields[i+1:] {
				lf.setMax(&later)
			}
			if !(later.String() < next.String()) {
				t.Errorf("%q (later fields at their maximum) does not sort before %q (%s+1)", later.String(), next.String(), f.name)
			}
		})
	}
}

func TestBinlogFileNumber(t *testing.T) {
	tests := []struct {
		name    string
		want    uint64
		wantErr bool
	}{
		{name: "mysql-bin.000010", want: 10},
		{name: "mysql-bin.000001", want: 1},
		{name: "mysql-bin.000000", want: 0},
		{name: "mysql-bin.999999", want: 999_999},
		{name: "mariadb-bin.1000000", want: 1_000_000},
		{name: "binlog.0000000042", want: 42},
		{name: "my.host.name-bin.000007", want: 7},
		{name: "/var/lib/mysql/mysql-bin.000123", want: 123},
		{name: "mysql-bin.18446744073709551615", want: 18446744073709551615},
		{name: "nosuffix", wantErr: true},
		{name: "x.", wantErr: true},
		{name: "", wantErr: true},
		{name: ".", wantErr: true},
		{name: "mysql-bin.index", wantErr: true},
		{name: "mysql-bin.-1", wantErr: true},
		{name: "mysql-bin.+1", wantErr: true},
		{name: "mysql-bin.0x10", wantErr: true},
		{name: "mysql-bin.1_000", wantErr: true},
		{name: "mysql-bin.000010 ", wantErr: true},
		{name: "mysql-bin.18446744073709551616", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := change.BinlogFileNumber(tt.name)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("BinlogFileNumber(%q) = %d, want an error", tt.name, got)
				}
				if !strings.Contains(err.Error(), `"`+tt.name+`"`) {
					t.Errorf("error %q does not quote the file name", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("BinlogFileNumber(%q): %v", tt.name, err)
			}
			if got != tt.want {
				t.Errorf("BinlogFileNumber(%q) = %d, want %d", tt.name, got, tt.want)
			}
		})
	}
}

// FuzzPosition checks that every string ParsePosition accepts is exactly the
// String of what it parses to, and that every in-range position survives a
// String/ParsePosition round trip with order preserved.
func FuzzPosition(f *testing.F) {
	f.Add("0001/0000000010/0000000000000004/1/0000000002/0000000001", uint32(1), uint64(10), uint64(4), uint8(1), uint64(2), uint64(1))
	f.Add("9999/9999999999/9999999999999999/1/9999999999/9999999999", uint32(maxEpoch), uint64(maxFile), uint64(maxOffset), uint8(1), uint64(maxAB), uint64(maxAB))
	f.Add("0000/0000000000/0000000000000000/0/0000000000/0000000000", uint32(0), uint64(0), uint64(0), uint8(0), uint64(0), uint64(0))
	f.Add("0000/0001000000/0000004294967301/2/0000000000/0000000000", uint32(0), uint64(1_000_000), uint64(1<<32+5), uint8(0), uint64(0), uint64(0))
	f.Add("0000/0000000001/0000000000000001/1/0000000000/000000000", uint32(70000), uint64(1<<63), uint64(1<<63), uint8(7), uint64(1<<40), uint64(1<<40))
	f.Add("", uint32(0), uint64(0), uint64(0), uint8(0), uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, s string, epoch uint32, file, offset uint64, kind uint8, a, b uint64) {
		if p, err := change.ParsePosition(s); err == nil {
			if got := p.String(); got != s {
				t.Errorf("ParsePosition(%q) = %+v, whose String is %q", s, p, got)
			}
		}

		p := change.Position{
			Epoch:  epoch % (maxEpoch + 1),
			File:   file % (maxFile + 1),
			Offset: offset % (maxOffset + 1),
			Kind:   change.Kind(kind % 2),
			A:      a % (maxAB + 1),
			B:      b % (maxAB + 1),
		}
		ps := p.String()
		if len(ps) != change.PositionLen {
			t.Fatalf("%+v.String() = %q: %d bytes, want %d", p, ps, len(ps), change.PositionLen)
		}
		back, err := change.ParsePosition(ps)
		if err != nil || back != p {
			t.Fatalf("ParsePosition(%q) = %+v, %v; want %+v", ps, back, err, p)
		}
		// The next position up in the last field sorts after it.
		if p.B < maxAB {
			q := p
			q.B++
			if !(ps < q.String()) {
				t.Errorf("%q does not sort before %q", ps, q.String())
			}
		}
	})
}
