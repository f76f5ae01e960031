package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// S3 is a versitygw S3 server with its posix backend on loopback: one bucket, whose objects are
// plain files under Root/Bucket (so tests can alter stored bytes behind the S3 API's back).
type S3 struct {
	URL       string // http://127.0.0.1:port
	Root      string // the posix backend's root; Root/Bucket is the bucket
	Bucket    string
	AccessKey string
	SecretKey string
	*Process
}

// StartVersityGW starts `versitygw posix` with a fresh root holding one bucket (made with mkdir,
// which the posix backend takes as a bucket) and waits until it listens.
func StartVersityGW(tb testing.TB) *S3 {
	tb.Helper()
	bin := Binary(tb, "versitygw")
	dir := tb.TempDir()
	s := &S3{Root: filepath.Join(dir, "root"), Bucket: "trustgate", AccessKey: "trustgate-test", SecretKey: "trustgate-test-secret"}
	if err := os.MkdirAll(filepath.Join(s.Root, s.Bucket), 0o755); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "--port", "127.0.0.1:0", "--access", s.AccessKey, "--secret", s.SecretKey,
		"--region", "us-east-1", "--quiet", "posix", s.Root)
	cmd.Dir = dir
	cmd.Env = cleanEnv("VGW_", "ROOT_ACCESS_KEY", "ROOT_SECRET")
	s.Process = StartProcess(tb, "versitygw", dir, cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, err := WaitListen(ctx, s.Process)
	if err != nil {
		tb.Fatalf("peers: versitygw: %v", err)
	}
	s.URL = "http://" + addr
	return s
}

// ObjectFile is the posix file holding object key.
func (s *S3) ObjectFile(key string) string {
	return filepath.Join(s.Root, s.Bucket, filepath.FromSlash(key))
}

// StorageYAML is a trustgate blob_store.storage section (distribution's s3 driver) for the bucket,
// as a YAML flow mapping.
func (s *S3) StorageYAML() string {
	params := map[string]any{
		"region": "us-east-1", "bucket": s.Bucket, "regionendpoint": s.URL, "forcepathstyle": true,
		"accesskey": s.AccessKey, "secretkey": s.SecretKey, "secure": false, "v4auth": true,
	}
	b, err := json.Marshal(map[string]any{"s3": params})
	if err != nil {
		panic(fmt.Sprintf("peers: %v", err))
	}
	return string(b)
}
