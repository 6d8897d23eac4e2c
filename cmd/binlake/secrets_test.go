package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/binlake/binlake/internal/testbed"
)

// TestSecretsNeverPrinted runs the real binary with every secret set — the
// MySQL password, the S3 secret key, the NATS password, the Kinesis secret
// key and session token, the API token — from files and the environment,
// with debug logs, and collects everything binlake shows: the logs of
// runs that work and of runs with each secret wrong (S3, MySQL, NATS), the
// status, tables and metrics API, binlake check, a config error, and the
// checkpoint files. None of it may hold a secret's value; the runs prove
// that the secrets were used (the pipeline loads, the API answers with the
// token). The Kinesis run uses kinesalite.
func TestSecretsNeverPrinted(t *testing.T) {
	const (
		mysqlPW   = "mysql-Pw-7f3a9c41"
		natsPW    = "nats-Pw-2b8e6d10"
		apiToken  = "api-Tok-9c1d5e77"
		kinSecret = "kinesis-Sk-4a6f0b92"
		kinToken  = "kinesis-St-83e2c5a1"
	)
	m, _ := testbed.NewWordPress(t, 20, 3)
	ctx := t.Context()
	if err := m.Exec(ctx, "CREATE USER 'cdc'@'%' IDENTIFIED BY '"+mysqlPW+"'",
		"GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'cdc'@'%'"); err != nil {
		t.Fatal(err)
	}
	s3 := testbed.NewS3(t)
	if err := s3.CreateBucket(ctx, "lake"); err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true, Username: "binlake", Password: natsPW})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	kin := testbed.NewKinesalite(t)
	secrets := map[string]string{"MySQL password": mysqlPW, "S3 secret key": s3.SecretKey, "NATS password": natsPW,
		"API token": apiToken, "Kinesis secret key": kinSecret, "Kinesis session token": kinToken}

	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mysqlFile, natsFile := file("mysql", mysqlPW), file("nats", natsPW)
	kinSecretFile, kinTokenFile := file("kinesis-secret", kinSecret), file("kinesis-token", kinToken)
	wrongFile := file("wrong", "wrong-Secret-000")
	port, err := testbed.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var shown strings.Builder // everything binlake showed
	// config writes a pipeline whose secrets come from the files and
	// $S3_SECRET and $BINLAKE_API_TOKEN; change edits the YAML.
	config := func(name, stream string, change func(string) string) string {
		state := name
		if name == "wrong-s3" {
			state = "nats" // a delivery checkpoint exists: the writes fail, not the start
		}
		yml := fmt.Sprintf(`task: secrets
source:
  mysql: {host: 127.0.0.1, port: %d, user: cdc, password_file: %s}
tables: [{include: "wordpress-db.%%"}]
stream:
  type: %s
  nats: {urls: [%q], user: binlake, password_file: %s}
  kinesis: {stream_name: secrets, shards: 1, endpoint: %q, region: %s, access_key_id: AKIDTEST, secret_access_key_file: %s, session_token_file: %s}
delivery: {buffer: {size: 64KiB, interval: 300ms}}
target: s3://lake/cdc
s3: {endpoint: %q, region: %s, path_style: true, access_key_id: %s, secret_access_key: "${S3_SECRET}", stall_timeout: 2s}
state_dir: %s
http: {listen: %s, token: "${BINLAKE_API_TOKEN}"}
log: {level: debug}
`, m.Port, mysqlFile, stream, ns.ClientURL(), natsFile, kin.Endpoint, kin.Region, kinSecretFile, kinTokenFile,
			s3.Endpoint, s3.Region, s3.AccessKey, filepath.Join(dir, "state-"+state), addr)
		if change != nil {
			yml = change(yml)
		}
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("S3_SECRET", s3.SecretKey)
	t.Setenv("BINLAKE_API_TOKEN", apiToken)
	get := func(path string) string {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Status + "\n" + string(b)
	}
	command := func(args ...string) string {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, _ := exec.CommandContext(cctx, binary, args...).CombinedOutput()
		shown.Write(out)
		return string(out)
	}
	// run starts binlake, waits until ready says so (or it exits), collects
	// the API's answers, stops it and collects its log.
	run := func(name, cfg string, ready func(status string) bool) {
		t.Helper()
		logPath := filepath.Join(dir, name+".log")
		p := start(t, cfg, logPath)
		if err := m.Exec(ctx, "UPDATE `wordpress-db`.wp_options SET option_value = '"+name+"' WHERE option_id = 1"); err != nil {
			t.Fatal(err)
		}
		var st string
		var exited error
		deadline := time.Now().Add(60 * time.Second)
	wait:
		for {
			select {
			case exited = <-p.done:
				t.Logf("%s: binlake exited: %v\n%s", name, exited, p.logTail())
				break wait
			case <-time.After(300 * time.Millisecond):
			}
			if st = get("/api/v1/status"); ready(st) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: not ready in time: %s", name, st)
				break
			}
		}
		for _, path := range []string{"/api/v1/status", "/api/v1/tables", "/metrics"} {
			shown.WriteString(get(path))
		}
		if exited == nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(30 * time.Second): // a drain waits for the target
				p.cmd.Process.Kill()
				<-p.done
			}
		}
		b, _ := os.ReadFile(logPath)
		shown.Write(b)
		t.Logf("%s: %d bytes of log, last status %.200s", name, len(b), st)
	}
	loaded := func(st string) bool { return strings.Contains(st, `"Load complete, replication ongoing"`) }

	good := config("nats", "nats", nil)
	if out := command("check", "-c", good); !strings.Contains(out, "ready:") {
		t.Errorf("binlake check with every secret right:\n%s", out)
	}
	run("nats", good, loaded)
	run("kinesis", config("kinesis", "kinesis", nil), loaded)
	// A wrong S3 secret: the target refuses the writes, the status says so.
	wrongS3 := config("wrong-s3", "nats", func(y string) string { return strings.Replace(y, "${S3_SECRET}", "${S3_WRONG}", 1) })
	t.Setenv("S3_WRONG", "wrong-S3-secret-1")
	secrets["wrong S3 secret"] = "wrong-S3-secret-1"
	run("wrong-s3", wrongS3, func(st string) bool { return strings.Contains(st, "target_refusing_writes") })
	command("check", "-c", wrongS3)
	// Without a delivery checkpoint, the start fails on the listing.
	fresh := config("wrong-s3-fresh", "nats", func(y string) string { return strings.Replace(y, "${S3_SECRET}", "${S3_WRONG}", 1) })
	if out := command("run", "-c", fresh); !strings.Contains(out, "SignatureDoesNotMatch") {
		t.Errorf("run with a wrong S3 secret and no checkpoint:\n%s", out)
	}
	// A wrong MySQL password and a wrong NATS password: binlake fails.
	for _, key := range []string{"mysql", "nats"} {
		cfg := config("wrong-"+key, "nats", func(y string) string {
			return strings.Replace(y, "password_file: "+filepath.Join(dir, key), "password_file: "+wrongFile, 1)
		})
		secrets["wrong password"] = "wrong-Secret-000"
		out := command("run", "-c", cfg)
		if !strings.Contains(out, "binlake: ") {
			t.Errorf("run with a wrong %s password did not fail:\n%s", key, out)
		}
		t.Logf("wrong %s password: %s", key, out[strings.LastIndex(out, "binlake: "):])
		command("check", "-c", cfg)
	}
	// A config error next to the secrets.
	out := command("check", "-c", config("bad", "nats", func(y string) string {
		return strings.Replace(y, `token: "${BINLAKE_API_TOKEN}"`, `token: "${BINLAKE_API_TOKEN} x"`, 1)
	}))
	if !strings.Contains(out, "http.token") {
		t.Errorf("a bad http.token is not reported:\n%s", out)
	}
	for _, name := range []string{"nats", "kinesis", "wrong-s3"} {
		for _, f := range []string{"capture.json", "delivery.json"} {
			b, _ := os.ReadFile(filepath.Join(dir, "state-"+name, f))
			shown.Write(b)
		}
	}

	all := shown.String()
	t.Logf("searched %d bytes of output", len(all))
	for _, want := range []string{"Load complete, replication ongoing", "target_refusing_writes", "Access denied for user 'cdc'", "Authorization Violation"} {
		if !strings.Contains(all, want) {
			t.Errorf("the output never says %q: a run did not do what the test expects", want)
		}
	}
	for what, v := range secrets {
		if i := strings.Index(all, v); i >= 0 {
			t.Errorf("the %s %q is in binlake's output: …%s…", what, v, all[max(0, i-200):min(len(all), i+100)])
		}
	}
}
