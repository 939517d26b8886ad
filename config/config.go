// Package config loads cedana's configuration: built-in defaults, then the JSON file
// <dir>/config.json (dir is /etc/cedana unless --config-dir or CEDANA_CONFIG_DIR says otherwise), then
// CEDANA_<SECTION>_<KEY> environment variables, one for every key (CEDANA_CHECKPOINT_DIR sets
// checkpoint.dir; a list is comma-separated, as in CEDANA_AUTH_ALLOWED_GROUPS=cedana,1001).
// Command-line flags, applied by the CLI, come last.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// DefaultDir holds config.json unless told otherwise.
const DefaultDir = "/etc/cedana"

// FileName is the config file's name inside the config directory.
const FileName = "config.json"

// EnvPrefix starts every environment variable cedana reads.
const EnvPrefix = "CEDANA_"

// Protocols the daemon can listen on.
const (
	ProtocolUnix = "unix"
	ProtocolTCP  = "tcp"
)

// Config is the whole configuration. JSON keys are the snake_case names in the tags.
type Config struct {
	// Address is the daemon's unix socket path or TCP host:port.
	Address string `json:"address" env:"ADDRESS"`
	// Protocol is "unix" or "tcp".
	Protocol string `json:"protocol" env:"PROTOCOL"`
	// Token is the bearer token a TCP daemon requires and the client sends. Prefer TokenFile or
	// CEDANA_TOKEN: a token here is readable by whoever can read config.json.
	Token string `json:"token" env:"TOKEN"`
	// TokenFile holds the token (surrounding white space ignored); it must be mode 0600 or stricter.
	// It is read when Token is empty.
	TokenFile string `json:"token_file" env:"TOKEN_FILE"`

	Auth   Auth   `json:"auth" envPrefix:"AUTH_"`
	TLS    TLS    `json:"tls" envPrefix:"TLS_"`
	Limits Limits `json:"limits" envPrefix:"LIMITS_"`

	Checkpoint Checkpoint `json:"checkpoint" envPrefix:"CHECKPOINT_"`
	CRIU       CRIU       `json:"criu" envPrefix:"CRIU_"`
	Restore    Restore    `json:"restore" envPrefix:"RESTORE_"`
	Log        Log        `json:"log" envPrefix:"LOG_"`
	DB         DB         `json:"db" envPrefix:"DB_"`
	Jobs       Jobs       `json:"jobs" envPrefix:"JOBS_"`
	Storage    Storage    `json:"storage" envPrefix:"STORAGE_"`
	Metrics    Metrics    `json:"metrics" envPrefix:"METRICS_"`
}

// Metrics configures the Prometheus metrics endpoint.
type Metrics struct {
	// Address is the host:port (":9464") of a plain HTTP listener that serves /metrics and nothing
	// else, without a token: it exposes no control. Empty: no metrics endpoint.
	Address string `json:"address" env:"ADDRESS"`
}

// Auth says who may use the daemon's unix socket besides root.
type Auth struct {
	// AllowedGroups are group names or numeric gids whose members may use the daemon over the unix
	// socket, as the docker group may use dockerd. Whoever may call the daemon is root in effect.
	AllowedGroups []string `json:"allowed_groups" env:"ALLOWED_GROUPS"`
}

// TLS configures TLS for the TCP transport. The daemon serves TLS when CertFile and KeyFile are
// set; the client speaks TLS when any of CAFile, ClientCertFile or CertFile is set.
type TLS struct {
	// CertFile and KeyFile are the daemon's certificate and private key (PEM).
	CertFile string `json:"cert_file" env:"CERT_FILE"`
	KeyFile  string `json:"key_file" env:"KEY_FILE"`
	// ClientCAFile, when set, makes the daemon require client certificates signed by this CA (mTLS).
	ClientCAFile string `json:"client_ca_file" env:"CLIENT_CA_FILE"`
	// CAFile is the CA the client verifies the daemon's certificate with; the system's roots when empty.
	CAFile string `json:"ca_file" env:"CA_FILE"`
	// ClientCertFile and ClientKeyFile are the certificate the client presents to a daemon that
	// requires one.
	ClientCertFile string `json:"client_cert_file" env:"CLIENT_CERT_FILE"`
	ClientKeyFile  string `json:"client_key_file" env:"CLIENT_KEY_FILE"`
	// ServerName is the name the client expects in the daemon's certificate; the address's host
	// when empty.
	ServerName string `json:"server_name" env:"SERVER_NAME"`
}

// Limits bound what the daemon accepts from one request.
type Limits struct {
	// MaxRequestBytes caps the size of one request message; larger ones are refused with
	// resource_exhausted before they are buffered.
	MaxRequestBytes int64 `json:"max_request_bytes" env:"MAX_REQUEST_BYTES"`
}

// DefaultMaxRequestBytes is the default of limits.max_request_bytes: ample for every request
// (the largest are a job's environment and arguments), small enough that no caller can make
// the daemon buffer much.
const DefaultMaxRequestBytes = 4 << 20

// Jobs configures managed jobs.
type Jobs struct {
	// LogDir receives <jid>.log, the output of each job started without --out.
	LogDir string `json:"log_dir" env:"LOG_DIR"`
}

// Checkpoint configures where checkpoints go.
type Checkpoint struct {
	// Dir is the default parent directory of new checkpoints (a path, or s3://bucket/prefix).
	Dir string `json:"dir" env:"DIR"`
	// Compression is the default of dump --compression: none, tar, gzip, lz4, zlib or zstd.
	Compression string `json:"compression" env:"COMPRESSION"`
	// TempDir holds the images of archived or remote checkpoints while they are made or restored;
	// the system's temporary directory when empty.
	TempDir string `json:"temp_dir" env:"TEMP_DIR"`
	// StreamImages has CRIU hand the images of an archived or s3:// checkpoint straight to the
	// daemon (criu --stream) instead of writing them into TempDir first, and a restore from an
	// archive feed them straight to CRIU. Off: the images pass through TempDir.
	StreamImages bool `json:"stream_images" env:"STREAM_IMAGES"`
	// StreamMemoryLimit bounds, in bytes, the streamed images the daemon holds in memory while it
	// archives them; beyond it they wait in a spill file in TempDir.
	StreamMemoryLimit int64 `json:"stream_memory_limit" env:"STREAM_MEMORY_LIMIT"`
}

// DefaultStreamMemoryLimit is checkpoint.stream_memory_limit's default: 256 MiB.
const DefaultStreamMemoryLimit = 256 << 20

// minStreamMemoryLimit is the least checkpoint.stream_memory_limit: one 16 MiB chunk.
const minStreamMemoryLimit = 16 << 20

// Storage configures remote checkpoint storage.
type Storage struct {
	S3 S3 `json:"s3" envPrefix:"S3_"`
}

// S3 configures an S3-compatible object store. Empty fields are taken from the usual AWS_*
// environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL).
type S3 struct {
	// Endpoint is host[:port]; AWS when empty.
	Endpoint string `json:"endpoint" env:"ENDPOINT"`
	// Region of the bucket.
	Region string `json:"region" env:"REGION"`
	// AccessKey and SecretKey are the credentials.
	AccessKey string `json:"access_key" env:"ACCESS_KEY"`
	SecretKey string `json:"secret_key" env:"SECRET_KEY"`
	// Insecure uses http instead of https.
	Insecure bool `json:"insecure" env:"INSECURE"`
}

// DefaultCRIULogLevel is criu.log_level's default: CRIU's own, errors and warnings.
const DefaultCRIULogLevel = 2

// CRIU configures the CRIU binary.
type CRIU struct {
	// BinaryPath is the CRIU binary; empty means search PATH and cedana's own install prefix.
	BinaryPath string `json:"binary_path" env:"BINARY_PATH"`
	// LeaveRunning is the default of dump's --leave-running.
	LeaveRunning bool `json:"leave_running" env:"LEAVE_RUNNING"`
	// LogLevel is the verbosity of the dump.log and restore.log CRIU writes (1-4, CRIU's -v):
	// 2, CRIU's own default, logs errors and warnings, all a failure's message quotes; 4 adds
	// CRIU's every step, at a cost (about 25 ms for 512 MiB), for a failure that needs them.
	LogLevel int `json:"log_level" env:"LOG_LEVEL"`
}

// Restore configures restores.
type Restore struct {
	// PIDWaitTimeout bounds the wait for a checkpoint's PIDs to be free (a Go duration, e.g. "10s").
	PIDWaitTimeout Duration `json:"pid_wait_timeout" env:"PID_WAIT_TIMEOUT"`
}

// Log configures the daemon's logs.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `json:"level" env:"LEVEL"`
	// Format is text or json.
	Format string `json:"format" env:"FORMAT"`
}

// DB configures the daemon's state database.
type DB struct {
	// Path of the database file.
	Path string `json:"path" env:"PATH"`
}

// Duration is a time.Duration written as a Go duration string in JSON and the environment.
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"10s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Default is the configuration when nothing else is said.
func Default() Config {
	return Config{
		Address:    "/run/cedana.sock",
		Protocol:   ProtocolUnix,
		Checkpoint: Checkpoint{Dir: "/var/lib/cedana/checkpoints", Compression: "none", StreamImages: true, StreamMemoryLimit: DefaultStreamMemoryLimit},
		CRIU:       CRIU{LogLevel: DefaultCRIULogLevel},
		Restore:    Restore{PIDWaitTimeout: Duration(10 * time.Second)},
		Log:        Log{Level: "info", Format: "text"},
		DB:         DB{Path: "/var/lib/cedana/cedana.db"},
		Jobs:       Jobs{LogDir: "/var/log/cedana"},
		Limits:     Limits{MaxRequestBytes: DefaultMaxRequestBytes},
	}
}

// Validate checks values that have a fixed set of choices.
func (c Config) Validate() error {
	switch c.Protocol {
	case ProtocolUnix, ProtocolTCP:
	default:
		return fmt.Errorf("protocol %q is not one of unix, tcp", c.Protocol)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format %q is not one of text, json", c.Log.Format)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level %q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Limits.MaxRequestBytes <= 0 {
		return fmt.Errorf("limits.max_request_bytes %d is not a positive number of bytes", c.Limits.MaxRequestBytes)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("tls.cert_file and tls.key_file go together: set both or neither")
	}
	if (c.TLS.ClientCertFile == "") != (c.TLS.ClientKeyFile == "") {
		return errors.New("tls.client_cert_file and tls.client_key_file go together: set both or neither")
	}
	if c.TLS.ClientCAFile != "" && c.TLS.CertFile == "" {
		return errors.New("tls.client_ca_file needs tls.cert_file and tls.key_file: client certificates are checked only over TLS")
	}
	if err := c.validateMetrics(); err != nil {
		return err
	}
	if c.CRIU.LogLevel < 1 || c.CRIU.LogLevel > 4 {
		return fmt.Errorf("criu.log_level %d is out of range: set 1 (errors only) to 4 (every step), 2 by default", c.CRIU.LogLevel)
	}
	if c.Checkpoint.StreamMemoryLimit < minStreamMemoryLimit {
		return fmt.Errorf("checkpoint.stream_memory_limit %d is below 16 MiB (%d bytes), the size of one streamed chunk", c.Checkpoint.StreamMemoryLimit, minStreamMemoryLimit)
	}
	if c.Restore.PIDWaitTimeout < 0 {
		return fmt.Errorf("restore.pid_wait_timeout %s is negative", time.Duration(c.Restore.PIDWaitTimeout))
	}
	return nil
}

// validateMetrics checks that metrics.address, when set, is a host:port other than the daemon's.
func (c Config) validateMetrics() error {
	if c.Metrics.Address == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Metrics.Address); err != nil {
		return fmt.Errorf("metrics.address %q is not a host:port such as \":9464\": %w", c.Metrics.Address, err)
	}
	if c.Protocol == ProtocolTCP && c.Metrics.Address == c.Address {
		return fmt.Errorf("metrics.address %q is the daemon's own address: give the metrics endpoint a port of its own", c.Metrics.Address)
	}
	return nil
}
