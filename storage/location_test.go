package storage

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    Location
		ok      bool
		wantErr string
	}{
		{in: "s3://bucket/prefix/name.tar.zst", want: Location{"bucket", "prefix/name.tar.zst"}, ok: true},
		{in: "s3://bucket/name", want: Location{"bucket", "name"}, ok: true},
		{in: "S3://bucket/name", want: Location{"bucket", "name"}, ok: true},
		{in: "s3://bucket", want: Location{"bucket", ""}, ok: true},
		{in: "s3://bucket/", want: Location{"bucket", ""}, ok: true},
		{in: "s3://bucket/dir/", want: Location{"bucket", "dir/"}, ok: true},
		{in: "s3://my.bucket-1/a b/c?d#e", want: Location{"my.bucket-1", "a b/c?d#e"}, ok: true},
		{in: "/var/lib/cedana/ckpt.tar", ok: false},
		{in: "ckpt.tar.zst", ok: false},
		{in: "", ok: false},
		{in: "s3:/bucket/x", ok: false},
		{in: "gs://bucket/x", ok: false},
		{in: "s3://", ok: true, wantErr: "no bucket name"},
		{in: "s3:///key", ok: true, wantErr: "no bucket name"},
		{in: "s3://ab/key", ok: true, wantErr: `invalid S3 URL "s3://ab/key": bucket "ab"`},
		{in: "s3://bad..bucket/key", ok: true, wantErr: `invalid S3 URL "s3://bad..bucket/key"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok, err := ParseURL(tt.in)
			assert.Equal(t, tt.ok, ok, "ok")
			assert.Equal(t, tt.ok, IsURL(tt.in), "IsURL")
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestLocationString(t *testing.T) {
	assert.Equal(t, "s3://bkt/k/x.tar", Location{"bkt", "k/x.tar"}.String())
	assert.Equal(t, "s3://bkt", Location{"bkt", ""}.String())
	for _, s := range []string{"s3://bkt/k/x.tar", "s3://bkt", "s3://bkt/dir/"} {
		loc, ok, err := ParseURL(s)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Equal(t, s, loc.String())
	}
}

func TestJoin(t *testing.T) {
	tests := []struct {
		key, name, want string
	}{
		{"prefix", "name.tar.zst", "prefix/name.tar.zst"},
		{"prefix/", "name.tar.zst", "prefix/name.tar.zst"},
		{"prefix//", "/name.tar.zst", "prefix/name.tar.zst"},
		{"a/b", "c/d", "a/b/c/d"},
		{"", "name", "name"},
		{"", "/name", "name"},
		{"prefix", "", "prefix"},
		{"", "", ""},
	}
	for _, tt := range tests {
		got := Location{Bucket: "b", Key: tt.key}.Join(tt.name)
		assert.Equal(t, Location{Bucket: "b", Key: tt.want}, got, "Join(%q, %q)", tt.key, tt.name)
	}
}

func TestFromEnv(t *testing.T) {
	full := map[string]string{
		"AWS_ACCESS_KEY_ID":     "AKID",
		"AWS_SECRET_ACCESS_KEY": "SECRET",
		"AWS_SESSION_TOKEN":     "TOKEN",
		"AWS_REGION":            "eu-west-1",
		"AWS_DEFAULT_REGION":    "us-west-2",
		"AWS_ENDPOINT_URL":      "https://generic.example.com",
		"AWS_ENDPOINT_URL_S3":   "http://127.0.0.1:7070/",
	}
	tests := []struct {
		name string
		cfg  Config
		env  map[string]string
		want Config
	}{
		{
			name: "all from env; S3 endpoint and AWS_REGION win",
			env:  full,
			want: Config{
				Endpoint: "127.0.0.1:7070", Region: "eu-west-1", AccessKey: "AKID", SecretKey: "SECRET",
				SessionToken: "TOKEN", Insecure: true,
			},
		},
		{
			name: "AWS_DEFAULT_REGION and generic https endpoint",
			env: map[string]string{
				"AWS_DEFAULT_REGION": "us-west-2",
				"AWS_ENDPOINT_URL":   "https://minio.internal:9000",
			},
			want: Config{Endpoint: "minio.internal:9000", Region: "us-west-2"},
		},
		{
			name: "Cedana's AWS_ENDPOINT when no AWS_ENDPOINT_URL",
			env:  map[string]string{"AWS_ENDPOINT": "http://127.0.0.1:9000"},
			want: Config{Endpoint: "127.0.0.1:9000", Insecure: true},
		},
		{
			name: "AWS_ENDPOINT_URL wins over AWS_ENDPOINT",
			env:  map[string]string{"AWS_ENDPOINT": "http://127.0.0.1:9000", "AWS_ENDPOINT_URL": "https://minio.internal:9000"},
			want: Config{Endpoint: "minio.internal:9000"},
		},
		{
			name: "endpoint without scheme keeps Insecure",
			cfg:  Config{Insecure: true},
			env:  map[string]string{"AWS_ENDPOINT_URL": "minio.internal:9000"},
			want: Config{Endpoint: "minio.internal:9000", Insecure: true},
		},
		{
			name: "set fields are kept, and a token is not paired with configured keys",
			cfg: Config{
				Endpoint: "s3.example.com", Region: "ap-south-1", AccessKey: "CFGKEY", SecretKey: "CFGSECRET",
				PathStyle: true,
			},
			env: full,
			want: Config{
				Endpoint: "s3.example.com", Region: "ap-south-1", AccessKey: "CFGKEY", SecretKey: "CFGSECRET",
				PathStyle: true,
			},
		},
		{
			name: "configured token kept",
			cfg:  Config{SessionToken: "CFGTOKEN"},
			env:  full,
			want: Config{
				Endpoint: "127.0.0.1:7070", Region: "eu-west-1", AccessKey: "AKID", SecretKey: "SECRET",
				SessionToken: "CFGTOKEN", Insecure: true,
			},
		},
		{
			name: "empty env",
			cfg:  Config{Endpoint: "x:1"},
			env:  nil,
			want: Config{Endpoint: "x:1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.cfg.FromEnv(func(k string) string { return tt.env[k] })
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestNewRejectsHalfCredentials(t *testing.T) {
	_, err := New(Config{AccessKey: "AKID"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AWS_SECRET_ACCESS_KEY")
	_, err = New(Config{SecretKey: "s"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "AWS_ACCESS_KEY_ID")
}
