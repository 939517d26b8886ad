package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoToken is returned, wrapped, by DaemonToken when no token is configured.
var ErrNoToken = errors.New("no token configured")

// DaemonToken returns the token a daemon requires on TCP: Token (from CEDANA_TOKEN or the config),
// else the contents of TokenFile. It refuses what would leak the token to other local users: a
// token file, or a config.json holding the token, that others may read (configPath is the config
// file Load read; "" if none). fromEnv says whether Token came from the environment.
func (c Config) DaemonToken(configPath string, fromEnv bool) (string, error) {
	if c.Token != "" {
		if !fromEnv && configPath != "" {
			if err := checkPrivate(configPath, "config file holding token"); err != nil {
				return "", fmt.Errorf("%w, or move the token to token_file or CEDANA_TOKEN", err)
			}
		}
		return c.Token, nil
	}
	if c.TokenFile == "" {
		return "", fmt.Errorf("%w: set token_file to a file of mode 0600 holding it, or CEDANA_TOKEN (or token in config.json)", ErrNoToken)
	}
	if err := checkPrivate(c.TokenFile, "token_file"); err != nil {
		return "", err
	}
	return readToken(c.TokenFile)
}

// ClientToken returns the token the client sends: Token, else TokenFile's contents when this user
// can read it, else "". A daemon on a unix socket needs none; one on TCP refuses the call and says so.
func (c Config) ClientToken() string {
	if c.Token != "" || c.TokenFile == "" {
		return c.Token
	}
	token, err := readToken(c.TokenFile)
	if err != nil {
		return ""
	}
	return token
}

// File returns the path of the config file Load reads for dir and getenv, whether or not it exists.
func File(dir string, getenv func(string) string) string {
	if dir == "" {
		dir = getenv(EnvPrefix + "CONFIG_DIR")
	}
	if dir == "" {
		dir = DefaultDir
	}
	return filepath.Join(dir, FileName)
}

func readToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read token_file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", fmt.Errorf("token_file %s is empty: write the token into it", path)
	}
	return token, nil
}

// checkPrivate refuses a file that users other than its owner may read or write.
func checkPrivate(path, what string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s %s is open to other users (mode %04o): the token would let them act as root; chmod 600 %s", what, path, perm, path)
	}
	return nil
}
