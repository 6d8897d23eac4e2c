package config

import "testing"

// FuzzParse: any input either fails with an error or gives a config that
// validates again (Parse validates); nothing makes the parser panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("task: t\nsource: {mysql: {host: h, user: u}}\ntables: [{include: a.b}]\ntarget: file:///tmp/x\nstate_dir: /tmp/s\n"))
	f.Add([]byte("task: t\nstream: {type: nats, nats: {urls: [nats://a:4222]}}\nrole: deliver\n"))
	f.Add([]byte("delivery: {buffer: {size: 5XiB, interval: -1s}}\n"))
	f.Add([]byte("transforms: {filters: [\"row.id >\"]}\n"))
	f.Add([]byte("task: ${UNSET_VARIABLE:-x}\n"))
	f.Add([]byte("{{{"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
	})
}
