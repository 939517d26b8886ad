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

// testEnv is an empty environment for chains.
func testEnv() *adapters.Env { return &adapters.Env{} }

// testState is a request's state with a logger that discards everything.
func testState() adapters.State {
	return adapters.State{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

type (
	testReq  struct{ visits []string }
	testResp struct{ result string }
	testH    = adapters.Handler[testReq, testResp]
)

// recorder is an adapter that records when it runs before and after its next handler.
func recorder(name string, log *[]string) adapters.Adapter[testH] {
	return func(next testH) testH {
		return func(ctx context.Context, env *adapters.Env, st adapters.State, req *testReq, resp *testResp) error {
			*log = append(*log, "before "+name)
			err := next(ctx, env, st, req, resp)
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
			h := testH(func(context.Context, *adapters.Env, adapters.State, *testReq, *testResp) error {
				log = append(log, "handler")
				return nil
			})
			var m []adapters.Adapter[testH]
			for _, name := range tt.adapters {
				m = append(m, recorder(name, &log))
			}
			require.NoError(t, h.With(m...)(context.Background(), testEnv(), testState(), &testReq{}, &testResp{}))
			assert.Equal(t, tt.want, log)
		})
	}
}

func TestWithMiddlewareSpread(t *testing.T) {
	var log []string
	h := testH(func(context.Context, *adapters.Env, adapters.State, *testReq, *testResp) error {
		log = append(log, "handler")
		return nil
	})
	mw := adapters.Middleware[testH]{recorder("a", &log), recorder("b", &log)}
	require.NoError(t, h.With(mw...).With(recorder("outer", &log))(context.Background(), testEnv(), testState(), &testReq{}, &testResp{}))
	assert.Equal(t, []string{"before outer", "before a", "before b", "handler", "after b", "after a", "after outer"}, log)
}

func TestWithShortCircuitAndErrors(t *testing.T) {
	errStop := errors.New("stop")
	var log []string
	handlerCalled := false
	h := testH(func(context.Context, *adapters.Env, adapters.State, *testReq, *testResp) error {
		handlerCalled = true
		return nil
	})
	stopper := func(next testH) testH {
		return func(context.Context, *adapters.Env, adapters.State, *testReq, *testResp) error { return errStop }
	}
	err := h.With(recorder("a", &log), stopper, recorder("c", &log))(context.Background(), testEnv(), testState(), &testReq{}, &testResp{})
	assert.ErrorIs(t, err, errStop, "an adapter's error reaches the caller through outer adapters")
	assert.False(t, handlerCalled)
	assert.Equal(t, []string{"before a", "after a"}, log)
}

func TestWithSharesRequestAndResponse(t *testing.T) {
	mark := func(name string) adapters.Adapter[testH] {
		return func(next testH) testH {
			return func(ctx context.Context, env *adapters.Env, st adapters.State, req *testReq, resp *testResp) error {
				req.visits = append(req.visits, name)
				return next(ctx, env, st, req, resp)
			}
		}
	}
	h := testH(func(_ context.Context, _ *adapters.Env, _ adapters.State, req *testReq, resp *testResp) error {
		resp.result = "done after " + req.visits[len(req.visits)-1]
		return nil
	})
	req, resp := &testReq{}, &testResp{}
	require.NoError(t, h.With(mark("a"), mark("b"))(context.Background(), testEnv(), testState(), req, resp))
	assert.Equal(t, []string{"a", "b"}, req.visits)
	assert.Equal(t, "done after b", resp.result)
}

func TestStatePassedByValue(t *testing.T) {
	var seen []string
	setDir := func(name, dir string) adapters.Adapter[testH] {
		return func(next testH) testH {
			return func(ctx context.Context, env *adapters.Env, st adapters.State, req *testReq, resp *testResp) error {
				seen = append(seen, name+" sees "+st.ImageDir)
				st.ImageDir = dir
				err := next(ctx, env, st, req, resp)
				seen = append(seen, name+" after next sees "+st.ImageDir)
				return err
			}
		}
	}
	h := testH(func(_ context.Context, env *adapters.Env, st adapters.State, _ *testReq, _ *testResp) error {
		seen = append(seen, "handler sees "+st.ImageDir)
		return nil
	})
	env, st := testEnv(), testState()
	st.ImageDir = "caller"
	require.NoError(t, h.With(setDir("a", "from-a"), setDir("b", "from-b"))(context.Background(), env, st, &testReq{}, &testResp{}))
	assert.Equal(t, []string{
		"a sees caller",
		"b sees from-a",
		"handler sees from-b",
		"b after next sees from-b",
		"a after next sees from-a",
	}, seen)
	assert.Equal(t, "caller", st.ImageDir, "the caller's State is not changed")
}
