package adapters_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/cedana/cedana/adapters"
)

// testOpts are chain options with a logger that discards everything.
func testOpts() adapters.Opts {
	return adapters.Opts{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

type (
	testReq  struct{ visits []string }
	testResp struct{ result string }
	testH    = adapters.Handler[testReq, testResp]
)

// recorder is an adapter that records when it runs before and after its next handler.
func recorder(name string, log *[]string) adapters.Adapter[testH] {
	return func(next testH) testH {
		return func(ctx context.Context, opts adapters.Opts, req *testReq, resp *testResp) error {
			*log = append(*log, "before "+name)
			err := next(ctx, opts, req, resp)
			*log = append(*log, "after "+name)
			return err
		}
	}
}

func TestWithOrder(t *testing.T) {
	tests := []struct {
		name     string
		adapters []string
		want     []string
	}{
		{name: "none", adapters: nil, want: []string{"handler"}},
		{name: "one", adapters: []string{"a"}, want: []string{"before a", "handler", "after a"}},
		{
			name:     "three, first outermost",
			adapters: []string{"a", "b", "c"},
			want:     []string{"before a", "before b", "before c", "handler", "after c", "after b", "after a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log []string
			h := testH(func(context.Context, adapters.Opts, *testReq, *testResp) error {
				log = append(log, "handler")
				return nil
			})
			var m []adapters.Adapter[testH]
			for _, name := range tt.adapters {
				m = append(m, recorder(name, &log))
			}
			require.NoError(t, h.With(m...)(context.Background(), testOpts(), &testReq{}, &testResp{}))
			assert.Equal(t, tt.want, log)
		})
	}
}

func TestWithMiddlewareSpread(t *testing.T) {
	var log []string
	h := testH(func(context.Context, adapters.Opts, *testReq, *testResp) error {
		log = append(log, "handler")
		return nil
	})
	mw := adapters.Middleware[testH]{recorder("a", &log), recorder("b", &log)}
	require.NoError(t, h.With(mw...).With(recorder("outer", &log))(context.Background(), testOpts(), &testReq{}, &testResp{}))
	assert.Equal(t, []string{"before outer", "before a", "before b", "handler", "after b", "after a", "after outer"}, log)
}

func TestWithShortCircuitAndErrors(t *testing.T) {
	errStop := errors.New("stop")
	var log []string
	handlerCalled := false
	h := testH(func(context.Context, adapters.Opts, *testReq, *testResp) error {
		handlerCalled = true
		return nil
	})
	stopper := func(next testH) testH {
		return func(context.Context, adapters.Opts, *testReq, *testResp) error { return errStop }
	}
	err := h.With(recorder("a", &log), stopper, recorder("c", &log))(context.Background(), testOpts(), &testReq{}, &testResp{})
	assert.ErrorIs(t, err, errStop, "an adapter's error reaches the caller through outer adapters")
	assert.False(t, handlerCalled)
	assert.Equal(t, []string{"before a", "after a"}, log)
}

func TestWithSharesRequestAndResponse(t *testing.T) {
	mark := func(name string) adapters.Adapter[testH] {
		return func(next testH) testH {
			return func(ctx context.Context, opts adapters.Opts, req *testReq, resp *testResp) error {
				req.visits = append(req.visits, name)
				return next(ctx, opts, req, resp)
			}
		}
	}
	h := testH(func(_ context.Context, _ adapters.Opts, req *testReq, resp *testResp) error {
		resp.result = "done after " + req.visits[len(req.visits)-1]
		return nil
	})
	req, resp := &testReq{}, &testResp{}
	require.NoError(t, h.With(mark("a"), mark("b"))(context.Background(), testOpts(), req, resp))
	assert.Equal(t, []string{"a", "b"}, req.visits)
	assert.Equal(t, "done after b", resp.result)
}

func TestOptsPassedByValue(t *testing.T) {
	var seen []string
	setDir := func(name, dir string) adapters.Adapter[testH] {
		return func(next testH) testH {
			return func(ctx context.Context, opts adapters.Opts, req *testReq, resp *testResp) error {
				seen = append(seen, name+" sees "+opts.ImageDir)
				opts.ImageDir = dir
				err := next(ctx, opts, req, resp)
				seen = append(seen, name+" after next sees "+opts.ImageDir)
				return err
			}
		}
	}
	h := testH(func(_ context.Context, opts adapters.Opts, _ *testReq, _ *testResp) error {
		seen = append(seen, "handler sees "+opts.ImageDir)
		return nil
	})
	opts := testOpts()
	opts.ImageDir = "caller"
	require.NoError(t, h.With(setDir("a", "from-a"), setDir("b", "from-b"))(context.Background(), opts, &testReq{}, &testResp{}))
	assert.Equal(t, []string{
		"a sees caller",
		"b sees from-a",
		"handler sees from-b",
		"b after next sees from-b",
		"a after next sees from-a",
	}, seen)
	assert.Equal(t, "caller", opts.ImageDir, "the caller's Opts are not changed")
}
