package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// AcceptanceTest checks that b behaves as the Bucket documentation says. Every
// backend's tests run it, and so can tests of other packages' Buckets (such as
// wrappers). b must be empty; AcceptanceTest leaves it empty.
func AcceptanceTest(t *testing.T, b Bucket) {
	t.Helper()
	if got := accList(t, b, ""); len(got) != 0 {
		t.Fatalf("%s: bucket is not empty: %v", b, got)
	}
	if b.String() == "" {
		t.Errorf("String() is empty")
	}

	t.Run("put and get", func(t *testing.T) {
		body := []byte(`{"op":"insert","table":"t","row":{"id":1}}` + "\n")
		accPut(t, b, "obj/a.json", body)
		accGetEqual(t, b, "obj/a.json", body)
	})

	t.Run("overwrite", func(t *testing.T) {
		accPut(t, b, "ow/key", []byte("first version"))
		accPut(t, b, "ow/key", []byte("second, longer version"))
		accGetEqual(t, b, "ow/key", []byte("second, longer version"))
		accPut(t, b, "ow/key", []byte("3")) // shorter: no tail of the old body left
		accGetEqual(t, b, "ow/key", []byte("3"))
		accListEqual(t, b, "ow/", []accObject{{"ow/key", 1}})
	})

	t.Run("not found", func(t *testing.T) {
		ctx := t.Context()
		accPut(t, b, "nf/dir/file", []byte("x"))
		for _, key := range []string{"missing", "nf/missing/deeper/key", "nf/dir", "nf/dir/file/below", "nf/di"} {
			got, err := b.Get(ctx, key)
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%q) = %q, %v; want ErrNotFound", key, got, err)
			}
		}
	})

	t.Run("delete", func(t *testing.T) {
		ctx := t.Context()
		accPut(t, b, "del/a", []byte("a"))
		accPut(t, b, "del/dir/b", []byte("b"))
		if err := b.Delete(ctx, "del/a"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := b.Get(ctx, "del/a"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
		}
		// Deleting what is not an object is not an error, and deleting the
		// "directory" of an object leaves the object alone.
		for _, key := range []string{"del/a", "del/never/existed", "del/dir", "del/a/below"} {
			if err := b.Delete(ctx, key); err != nil {
				t.Errorf("Delete(%q) = %v, want nil", key, err)
			}
		}
		accListEqual(t, b, "del/", []accObject{{"del/dir/b", 1}})
		if err := b.Delete(ctx, "del/dir/b"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		accListEqual(t, b, "del/", nil)
	})

	t.Run("empty object", func(t *testing.T) {
		accPut(t, b, "empty/nil", nil)
		accPut(t, b, "empty/zero", []byte{})
		accGetEqual(t, b, "empty/nil", nil)
		accGetEqual(t, b, "empty/zero", nil)
		accListEqual(t, b, "empty/", []accObject{{"empty/nil", 0}, {"empty/zero", 0}})
	})

	t.Run("nested keys", func(t *testing.T) {
		want := []accObject{{"nest/top", 3}, {"nest/y/shallow", 7}, {"nest/y/z/w/deep.json", 4}}
		for _, o := range want {
			accPut(t, b, o.Key, bytes.Repeat([]byte("n"), int(o.Size)))
		}
		accListEqual(t, b, "nest/", want)
		accListEqual(t, b, "nest/y/z/", want[2:])
		for _, o := range want {
			accGetEqual(t, b, o.Key, bytes.Repeat([]byte("n"), int(o.Size)))
		}
	})

	t.Run("list order", func(t *testing.T) {
		// Byte order of whole keys, which is not the order of a directory
		// walk: "a.txt" < "a/b" because '.' < '/', and "a-c" < "a.txt" < "a/".
		keys := []string{
			"order/b", "order/a/b", "order/a.txt", "order/a-c", "order/a0", "order/B",
			"order/aa", "order/z/y/x", "order/\u00fc.json", "order/a/b.txt", "order/a/a/a",
		}
		for i, k := range keys {
			accPut(t, b, k, bytes.Repeat([]byte("o"), i))
		}
		var want []accObject
		for _, k := range slices.Sorted(slices.Values(keys)) {
			want = append(want, accObject{k, int64(slices.Index(keys, k))})
		}
		accListEqual(t, b, "order/", want)
	})

	t.Run("list prefix", func(t *testing.T) {
		for _, k := range []string{"pf/log-2024-01/a", "pf/log-2024-02/b", "pf/log-2025-01/c", "pf/other", "pfx/ignored"} {
			accPut(t, b, k, []byte(k))
		}
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"pf/log-2024", []string{"pf/log-2024-01/a", "pf/log-2024-02/b"}},
			{"pf/log-2024-01/", []string{"pf/log-2024-01/a"}},
			{"pf/log-2024-01/a", []string{"pf/log-2024-01/a"}},
			{"pf/", []string{"pf/log-2024-01/a", "pf/log-2024-02/b", "pf/log-2025-01/c", "pf/other"}},
			{"pf", []string{"pf/log-2024-01/a", "pf/log-2024-02/b", "pf/log-2025-01/c", "pf/other", "pfx/ignored"}},
			{"pf/nomatch", nil},
			{"pf/other/", nil},
			{"pf//", nil},
			{"pf/../pfx/", nil},
			{"/pf/", nil},
			{"../", nil},
			{"", []string{"pf/log-2024-01/a", "pf/log-2024-02/b", "pf/log-2025-01/c", "pf/other", "pfx/ignored"}},
		} {
			var want []accObject
			for _, k := range tc.want {
				want = append(want, accObject{k, int64(len(k))})
			}
			accListEqual(t, b, tc.prefix, want)
		}
	})

	t.Run("list stops on error", func(t *testing.T) {
		for _, k := range []string{"stop/1", "stop/2", "stop/3"} {
			accPut(t, b, k, []byte(k))
		}
		errStop := errors.New("stop here")
		var seen []string
		err := b.List(t.Context(), "stop/", func(key string, _ int64) error {
			seen = append(seen, key)
			return errStop
		})
		if !errors.Is(err, errStop) {
			t.Errorf("List error = %v, want one wrapping %v", err, errStop)
		}
		if !slices.Equal(seen, []string{"stop/1"}) {
			t.Errorf("List called fn for %q after it failed; want only [stop/1]", seen)
		}
	})

	t.Run("large object", func(t *testing.T) {
		// Larger than any sensible multipart threshold in tests (5 MiB parts
		// make four), and not a multiple of it.
		body := accRandom(1, 20<<20+12345)
		accPut(t, b, "large/object.bin", body)
		got, err := b.Get(t.Context(), "large/object.bin")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(body))
		}
		accListEqual(t, b, "large/", []accObject{{"large/object.bin", int64(len(body))}})
	})

	t.Run("concurrent puts", func(t *testing.T) {
		const n = 16
		bodies := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			key := fmt.Sprintf("conc/%02d/obj", i)
			bodies[i] = accRandom(uint64(100+i), 1000*(i+1))
			t.Cleanup(func() { _ = b.Delete(context.Background(), key) })
			wg.Go(func() { errs[i] = b.Put(t.Context(), key, bodies[i]) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("concurrent Put: %v", err)
		}
		var want []accObject
		for i := range n {
			key := fmt.Sprintf("conc/%02d/obj", i)
			want = append(want, accObject{key, int64(len(bodies[i]))})
			accGetEqual(t, b, key, bodies[i])
		}
		accListEqual(t, b, "conc/", want)
	})

	t.Run("readers see whole objects", func(t *testing.T) {
		// Overwrite an object while others read it: every read must return
		// one of the versions, whole.
		versions := [][]byte{bytes.Repeat([]byte("A"), 256<<10), bytes.Repeat([]byte("B"), 256<<10)}
		accPut(t, b, "atomic/obj", versions[0])
		ctx := t.Context()
		done := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var problems []string
		for range 2 {
			wg.Go(func() {
				for {
					select {
					case <-done:
						return
					default:
					}
					got, err := b.Get(ctx, "atomic/obj")
					if err == nil && (bytes.Equal(got, versions[0]) || bytes.Equal(got, versions[1])) {
						continue
					}
					mu.Lock()
					if err != nil {
						problems = append(problems, err.Error())
					} else {
						problems = append(problems, fmt.Sprintf("%d-byte body that is neither version", len(got)))
					}
					mu.Unlock()
				}
			})
		}
		for i := range 10 {
			if err := b.Put(ctx, "atomic/obj", versions[(i+1)%2]); err != nil {
				t.Errorf("Put: %v", err)
				break
			}
		}
		close(done)
		wg.Wait()
		if len(problems) > 0 {
			t.Errorf("readers saw %d bad results during overwrites, first: %s", len(problems), problems[0])
		}
	})

	t.Run("invalid keys", func(t *testing.T) {
		ctx := t.Context()
		for _, key := range []string{"", "/abs", "trailing/", "a//b", "a/../b", "..", ".", "./a", "a/.", "nul\x00key", "bad\xffutf8"} {
			if err := b.Put(ctx, key, []byte("x")); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
				_ = b.Delete(context.Background(), key)
			}
			if _, err := b.Get(ctx, key); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
			}
			if err := b.Delete(ctx, key); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
			}
		}
		accListEqual(t, b, "", nil)
	})

	t.Run("canceled context", func(t *testing.T) {
		accPut(t, b, "cancel/existing", []byte("x"))
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := b.Put(ctx, "cancel/new", []byte("x")); err == nil {
			t.Errorf("Put with a canceled context succeeded")
			t.Cleanup(func() { _ = b.Delete(context.Background(), "cancel/new") })
		}
		if _, err := b.Get(ctx, "cancel/existing"); err == nil {
			t.Errorf("Get with a canceled context succeeded")
		}
		if err := b.List(ctx, "cancel/", func(string, int64) error { return nil }); err == nil {
			t.Errorf("List with a canceled context succeeded")
		}
		if err := b.Delete(ctx, "cancel/existing"); err == nil {
			t.Errorf("Delete with a canceled context succeeded")
		}
		accListEqual(t, b, "cancel/", []accObject{{"cancel/existing", 1}})
	})

	if got := accList(t, b, ""); len(got) != 0 {
		t.Errorf("bucket not empty after the tests deleted everything they put: %v", got)
	}
}

// accObject is a listed object.
type accObject struct {
	Key  string
	Size int64
}

// accPut puts body under key and deletes it when the test ends.
func accPut(t *testing.T, b Bucket, key string, body []byte) {
	t.Helper()
	t.Cleanup(func() {
		if err := b.Delete(context.Background(), key); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := b.Put(t.Context(), key, body); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func accGetEqual(t *testing.T, b Bucket, key string, want []byte) {
	t.Helper()
	got, err := b.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		if len(got) > 64 || len(want) > 64 {
			t.Fatalf("Get(%q): %d bytes differ from the %d bytes put", key, len(got), len(want))
		}
		t.Fatalf("Get(%q) = %q, want %q", key, got, want)
	}
}

func accList(t *testing.T, b Bucket, prefix string) []accObject {
	t.Helper()
	var got []accObject
	err := b.List(t.Context(), prefix, func(key string, size int64) error {
		got = append(got, accObject{key, size})
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

func accListEqual(t *testing.T, b Bucket, prefix string, want []accObject) {
	t.Helper()
	if got := accList(t, b, prefix); !slices.Equal(got, want) {
		t.Errorf("List(%q):\n got %v\nwant %v", prefix, got, want)
	}
}

// accRandom returns n reproducible pseudo-random bytes.
func accRandom(seed uint64, n int) []byte {
	var key [32]byte
	copy(key[:], strings.Repeat(fmt.Sprint(seed), 32))
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// ConditionalAcceptanceTest checks that b's conditional writes behave as
// Conditional says, also under concurrent writers: of many PutIf with the
// same match, exactly one wins. b must be empty; it is left empty.
func ConditionalAcceptanceTest(t *testing.T, b Conditional) {
	t.Helper()
	ctx := t.Context()
	const key = "leases/partition.1"
	e1, err := b.PutIf(ctx, key, []byte("a-1"), "")
	if err != nil {
		t.Fatalf("PutIf of a new key: %v", err)
	}
	if _, err := b.PutIf(ctx, key, []byte("b-1"), ""); !errors.Is(err, ErrPrecondition) {
		t.Errorf("PutIf(match \"\") over an existing object: %v, want ErrPrecondition", err)
	}
	accGetEqual(t, b, key, []byte("a-1"))
	e2, err := b.PutIf(ctx, key, []byte("a-2"), e1)
	if err != nil {
		t.Fatalf("PutIf with the current ETag: %v", err)
	}
	if SameETag(e1, e2) {
		t.Errorf("two contents have the same ETag %s", e1)
	}
	if _, err := b.PutIf(ctx, key, []byte("b-2"), e1); !errors.Is(err, ErrPrecondition) {
		t.Errorf("PutIf with a stale ETag: %v, want ErrPrecondition", err)
	}
	if _, err := b.PutIf(ctx, "leases/missing", []byte("x"), e1); !errors.Is(err, ErrPrecondition) {
		t.Errorf("PutIf(match) of a missing object: %v, want ErrPrecondition", err)
	}
	accGetEqual(t, b, key, []byte("a-2"))
	if _, err := b.PutIf(ctx, "leases/partition.10", []byte("other"), ""); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	if err := b.ListETags(ctx, "leases/", func(k, e string) error { got[k] = e; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !SameETag(got[key], e2) {
		t.Errorf("ListETags = %v, want %s with %s and leases/partition.10", got, key, e2)
	}
	if err := b.DeleteIf(ctx, key, e1); !errors.Is(err, ErrPrecondition) {
		t.Errorf("DeleteIf with a stale ETag: %v, want ErrPrecondition", err)
	}
	accGetEqual(t, b, key, []byte("a-2"))
	if err := b.DeleteIf(ctx, key, e2); err != nil {
		t.Fatalf("DeleteIf with the current ETag: %v", err)
	}
	if _, err := b.Get(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after DeleteIf: %v, want ErrNotFound", err)
	}
	if err := b.DeleteIf(ctx, key, e2); err != nil {
		t.Errorf("DeleteIf of a missing object: %v, want nil (as Delete)", err)
	}

	// Racing writers: from the same starting point, one wins each round.
	etag, err := b.PutIf(ctx, key, []byte("race-0"), "")
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var wins []string
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, err := b.PutIf(ctx, key, fmt.Appendf(nil, "race-%d-%d", round, w), etag)
				if err == nil {
					mu.Lock()
					wins = append(wins, e)
					mu.Unlock()
				} else if !errors.Is(err, ErrPrecondition) {
					t.Errorf("racing PutIf: %v", err)
				}
			}()
		}
		wg.Wait()
		if len(wins) != 1 {
			t.Fatalf("round %d: %d racing PutIf won, want exactly 1", round, len(wins))
		}
		etag = wins[0]
	}
	for _, k := range []string{key, "leases/partition.10"} {
		if err := b.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
}
