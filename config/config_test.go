package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte(`{"address":"/tmp/file.sock","checkpoint":{"dir":"/from/file"},"log":{"level":"debug"}}`), 0o600))

	tests := []struct {
		name  string
		dir   string
		env   map[string]string
		check func(t *testing.T, c Config)
		err   string
	}{
		{
			name: "defaults when there is no file",
			dir:  t.TempDir(),
			check: func(t *testing.T, c Config) {
				assert.Equal(t, Default(), c)
			},
		},
		{
			name: "file overrides defaults",
			dir:  dir,
			check: func(t *testing.T, c Config) {
				assert.Equal(t, "/tmp/file.sock", c.Address)
				assert.Equal(t, "/from/file", c.Checkpoint.Dir)
				assert.Equal(t, "debug", c.Log.Level)
				assert.Equal(t, ProtocolUnix, c.Protocol)
			},
		},
		{
			name: "environment overrides the file",
			dir:  dir,
			env: map[string]string{
				"CEDANA_ADDRESS": "127.0.0.1:9", "CEDANA_PROTOCOL": "tcp", "CEDANA_CHECKPOINT_DIR": "/from/env",
				"CEDANA_CRIU_BINARY_PATH": "/x/criu", "CEDANA_LOG_LEVEL": "warn", "CEDANA_DB_PATH": "/x/db",
				"CEDANA_RESTORE_PID_WAIT_TIMEOUT": "3s", "CEDANA_LOG_FORMAT": "json", "CEDANA_TOKEN": "t",
			},
			check: func(t *testing.T, c Config) {
				assert.Equal(t, "127.0.0.1:9", c.Address)
				assert.Equal(t, ProtocolTCP, c.Protocol)
				assert.Equal(t, "/from/env", c.Checkpoint.Dir)
				assert.Equal(t, "/x/criu", c.CRIU.BinaryPath)
				assert.Equal(t, "warn", c.Log.Level)
				assert.Equal(t, "json", c.Log.Format)
				assert.Equal(t, "/x/db", c.DB.Path)
				assert.Equal(t, "t", c.Token)
				assert.Equal(t, Duration(3*time.Second), c.Restore.PIDWaitTimeout)
			},
		},
		{
			name: "CEDANA_CONFIG_DIR picks the file",
			env:  map[string]string{"CEDANA_CONFIG_DIR": dir},
			check: func(t *testing.T, c Config) {
				assert.Equal(t, "/from/file", c.Checkpoint.Dir)
			},
		},
		{
			name: "security settings from the environment; a list is comma-separated",
			dir:  t.TempDir(),
			env: map[string]string{
				"CEDANA_AUTH_ALLOWED_GROUPS": "cedana, 1001,", "CEDANA_TOKEN_FILE": "/etc/cedana/token",
				"CEDANA_TLS_CERT_FILE": "/c.pem", "CEDANA_TLS_KEY_FILE": "/k.pem", "CEDANA_TLS_CLIENT_CA_FILE": "/ca.pem",
				"CEDANA_LIMITS_MAX_REQUEST_BYTES": "1048576",
			},
			check: func(t *testing.T, c Config) {
				assert.Equal(t, []string{"cedana", "1001"}, c.Auth.AllowedGroups)
				assert.Equal(t, "/etc/cedana/token", c.TokenFile)
				assert.Equal(t, TLS{CertFile: "/c.pem", KeyFile: "/k.pem", ClientCAFile: "/ca.pem"}, c.TLS)
				assert.Equal(t, int64(1<<20), c.Limits.MaxRequestBytes)
			},
		},
		{name: "certificate without key", dir: t.TempDir(), env: map[string]string{"CEDANA_TLS_CERT_FILE": "/c.pem"}, err: "tls.cert_file and tls.key_file go together"},
		{name: "client certificate without key", dir: t.TempDir(), env: map[string]string{"CEDANA_TLS_CLIENT_CERT_FILE": "/c.pem"}, err: "tls.client_cert_file and tls.client_key_file"},
		{name: "client CA without TLS", dir: t.TempDir(), env: map[string]string{"CEDANA_TLS_CLIENT_CA_FILE": "/ca.pem"}, err: "tls.client_ca_file needs tls.cert_file"},
		{name: "no request size", dir: t.TempDir(), env: map[string]string{"CEDANA_LIMITS_MAX_REQUEST_BYTES": "-1"}, err: "limits.max_request_bytes"},
		{name: "bad protocol", dir: t.TempDir(), env: map[string]string{"CEDANA_PROTOCOL": "udp"}, err: `protocol "udp"`},
		{name: "bad duration", dir: t.TempDir(), env: map[string]string{"CEDANA_RESTORE_PID_WAIT_TIMEOUT": "soon"}, err: "CEDANA_RESTORE_PID_WAIT_TIMEOUT"},
		{name: "bad number", dir: t.TempDir(), env: map[string]string{"CEDANA_LIMITS_MAX_REQUEST_BYTES": "lots"}, err: `environment variable CEDANA_LIMITS_MAX_REQUEST_BYTES="lots": strconv.ParseInt`},
		{name: "first bad variable named", dir: t.TempDir(), env: map[string]string{"CEDANA_STORAGE_S3_INSECURE": "maybe", "CEDANA_LIMITS_MAX_REQUEST_BYTES": "lots"}, err: "CEDANA_LIMITS_MAX_REQUEST_BYTES"},
		{name: "metrics address", dir: t.TempDir(), env: map[string]string{"CEDANA_METRICS_ADDRESS": ":9464"}, check: func(t *testing.T, c Config) {
			assert.Equal(t, ":9464", c.Metrics.Address)
		}},
		{name: "metrics address without port", dir: t.TempDir(), env: map[string]string{"CEDANA_METRICS_ADDRESS": "9464"}, err: `metrics.address "9464" is not a host:port`},
		{name: "metrics on the daemon's address", dir: t.TempDir(), env: map[string]string{"CEDANA_PROTOCOL": "tcp", "CEDANA_ADDRESS": "127.0.0.1:9", "CEDANA_METRICS_ADDRESS": "127.0.0.1:9"}, err: "port of its own"},
		{name: "empty variables ignored", dir: t.TempDir(), env: map[string]string{"CEDANA_LOG_LEVEL": "", "CEDANA_AUTH_ALLOWED_GROUPS": ""}, check: func(t *testing.T, c Config) {
			assert.Equal(t, Default(), c)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.dir, envOf(tt.env))
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

// TestEnvNames: every key has its CEDANA_<SECTION>_<KEY> variable, named after its JSON path.
func TestEnvNames(t *testing.T) {
	assert.Equal(t, []string{
		"CEDANA_ADDRESS", "CEDANA_PROTOCOL", "CEDANA_TOKEN", "CEDANA_TOKEN_FILE",
		"CEDANA_AUTH_ALLOWED_GROUPS",
		"CEDANA_TLS_CERT_FILE", "CEDANA_TLS_KEY_FILE", "CEDANA_TLS_CLIENT_CA_FILE", "CEDANA_TLS_CA_FILE",
		"CEDANA_TLS_CLIENT_CERT_FILE", "CEDANA_TLS_CLIENT_KEY_FILE", "CEDANA_TLS_SERVER_NAME",
		"CEDANA_LIMITS_MAX_REQUEST_BYTES",
		"CEDANA_CHECKPOINT_DIR", "CEDANA_CHECKPOINT_COMPRESSION", "CEDANA_CHECKPOINT_TEMP_DIR",
		"CEDANA_CHECKPOINT_STREAM_IMAGES", "CEDANA_CHECKPOINT_STREAM_MEMORY_LIMIT",
		"CEDANA_CRIU_BINARY_PATH", "CEDANA_CRIU_LEAVE_RUNNING", "CEDANA_CRIU_LOG_LEVEL", "CEDANA_RESTORE_PID_WAIT_TIMEOUT", "CEDANA_LOG_LEVEL", "CEDANA_LOG_FORMAT",
		"CEDANA_DB_PATH", "CEDANA_JOBS_LOG_DIR",
		"CEDANA_STORAGE_S3_ENDPOINT", "CEDANA_STORAGE_S3_REGION", "CEDANA_STORAGE_S3_ACCESS_KEY",
		"CEDANA_STORAGE_S3_SECRET_KEY", "CEDANA_STORAGE_S3_INSECURE", "CEDANA_METRICS_ADDRESS",
	}, EnvNames())
}

func TestTokens(t *testing.T) {
	dir := t.TempDir()
	private := filepath.Join(dir, "private")
	require.NoError(t, os.WriteFile(private, []byte("  s3cret\n"), 0o600))
	open := filepath.Join(dir, "open")
	require.NoError(t, os.WriteFile(open, []byte("s3cret"), 0o640))
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	openConfig := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(openConfig, []byte(`{"token":"t"}`), 0o644))

	tests := []struct {
		name       string
		cfg        Config
		configPath string
		fromEnv    bool
		want       string
		err        string
	}{
		{name: "none", err: "no token configured"},
		{name: "from the environment", cfg: Config{Token: "t"}, configPath: openConfig, fromEnv: true, want: "t"},
		{name: "in a config file others read", cfg: Config{Token: "t"}, configPath: openConfig, err: "open to other users (mode 0644)"},
		{name: "from a private file, trimmed", cfg: Config{TokenFile: private}, want: "s3cret"},
		{name: "from a file others read", cfg: Config{TokenFile: open}, err: "chmod 600 " + open},
		{name: "from an empty file", cfg: Config{TokenFile: empty}, err: "is empty"},
		{name: "from a missing file", cfg: Config{TokenFile: filepath.Join(dir, "none")}, err: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.DaemonToken(tt.configPath, tt.fromEnv)
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	assert.Equal(t, "s3cret", Config{TokenFile: private}.ClientToken())
	assert.Equal(t, "t", Config{Token: "t", TokenFile: private}.ClientToken())
	assert.Empty(t, Config{TokenFile: filepath.Join(dir, "none")}.ClientToken(), "an unreadable file sends no token")
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		data string
		nil  bool // data is nil: no file
		env  map[string]string
		err  string
	}{
		{name: "no file", nil: true},
		{name: "empty object", data: `{}`},
		{name: "null", data: `null`},
		{name: "trailing space", data: "{}\n\n  "},
		{name: "empty file", data: "", err: "config: the file is empty"},
		{name: "blank file", data: " \n", err: "config: the file is empty"},
		{name: "cut short", data: `{"address":"/x`, err: "ends too early"},
		{name: "syntax error", data: `{"address" "/x"}`, err: "at byte 12"},
		{name: "two objects", data: `{}{}`, err: "more after the JSON object, at byte 2"},
		{name: "garbage after", data: `{} x`, err: "more after the JSON object"},
		{name: "unknown key ignored", data: `{"adress":"x","gpu":{"pool_size":2}}`},
		{name: "wrong type", data: `{"address":5}`, err: "Config.address"},
		{name: "not an object", data: `[]`, err: "cannot unmarshal array"},
		{name: "bad duration", data: `{"restore":{"pid_wait_timeout":"soon"}}`, err: `invalid duration "soon"`},
		{name: "negative duration", data: `{"restore":{"pid_wait_timeout":"-1s"}}`, err: "restore.pid_wait_timeout -1s is negative"},
		{name: "criu log level 2", data: `{"criu":{"log_level":2}}`},
		{name: "criu log level 0", data: `{"criu":{"log_level":0}}`, err: "criu.log_level 0 is out of range"},
		{name: "criu log level 5", data: `{"criu":{"log_level":5}}`, err: "criu.log_level 5 is out of range"},
		{name: "criu log level from env", nil: true, env: map[string]string{"CEDANA_CRIU_LOG_LEVEL": "9"}, err: "criu.log_level 9 is out of range"},
		{name: "bad env", nil: true, env: map[string]string{"CEDANA_STORAGE_S3_INSECURE": "maybe"}, err: "CEDANA_STORAGE_S3_INSECURE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.data)
			if tt.nil {
				data = nil
			}
			c, err := Parse(data, envOf(tt.env))
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, Default(), c)
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	require.NoError(t, os.WriteFile(path, []byte(`{} {}`), 0o600))
	_, err := Load(dir, envOf(nil))
	assert.ErrorContains(t, err, "config "+path+": more after the JSON object")
}

// TestCRIULogLevel: criu.log_level is CRIU's default unless the file or the environment says.
func TestCRIULogLevel(t *testing.T) {
	tests := []struct {
		name string
		data string
		env  map[string]string
		want int
	}{
		{name: "default", data: `{}`, want: DefaultCRIULogLevel},
		{name: "file", data: `{"criu":{"log_level":4}}`, want: 4},
		{name: "environment", data: `{}`, env: map[string]string{"CEDANA_CRIU_LOG_LEVEL": "1"}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.data), envOf(tt.env))
			require.NoError(t, err)
			assert.Equal(t, tt.want, c.CRIU.LogLevel)
		})
	}
}
