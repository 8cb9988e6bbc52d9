package errgrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// Every class survives the trip server → gRPC → client, message included.
func TestRoundTrip(t *testing.T) {
	for _, c := range table {
		err := fmt.Errorf("job j-1: %w", c.class)
		g := ToGRPC(err)
		if status.Code(g) != c.code {
			t.Errorf("%v: code %v, want %v", c.class, status.Code(g), c.code)
		}
		back := ToNative(g)
		if !errors.Is(back, c.class) || back.Error() != err.Error() || Code(back) != c.code || !IsStatus(back) {
			t.Errorf("%v: back as %q (is %v, code %v)", c.class, back, errors.Is(back, c.class), Code(back))
		}
		if again := ToNative(back); again != back {
			t.Errorf("%v: ToNative twice changed the error", c.class)
		}
		if ToGRPC(back) != back {
			t.Errorf("%v: ToGRPC of a converted status is not the same status", c.class)
		}
	}
}

func TestUnclassified(t *testing.T) {
	plain := errors.New("plain")
	if Code(plain) != codes.Unknown || status.Code(ToGRPC(plain)) != codes.Unknown || status.Convert(ToGRPC(plain)).Message() != "plain" {
		t.Error("an unclassified error is not UNKNOWN with its message")
	}
	if ToGRPC(nil) != nil || ToNative(nil) != nil || Code(nil) != codes.OK || IsStatus(nil) {
		t.Error("nil mishandled")
	}
	if ToNative(io.EOF) != io.EOF || IsStatus(io.EOF) {
		t.Error("a local error was changed or counted as remote")
	}
	unknown := ToNative(status.Error(codes.Unknown, "what"))
	if unknown.Error() != "what" || Code(unknown) != codes.Unknown || !IsStatus(unknown) || errors.Unwrap(unknown) != nil {
		t.Errorf("a code with no class: %q code %v", unknown, Code(unknown))
	}
	if Code(fmt.Errorf("x: %w", context.DeadlineExceeded)) != codes.DeadlineExceeded {
		t.Error("deadline not mapped")
	}
	// A status keeps its own code even when wrapped with another class.
	wrapped := fmt.Errorf("%w (%w)", status.Error(codes.NotFound, "gone"), errdefs.ErrInternal)
	if Code(wrapped) != codes.NotFound {
		t.Errorf("wrapped status: %v", Code(wrapped))
	}
}

func TestMessageOfInvalid(t *testing.T) {
	err := fmt.Errorf("copy: %w", errdefs.Invalid("source_region", "unknown region %q", "mars-1"))
	g := ToGRPC(err)
	if status.Code(g) != codes.InvalidArgument || status.Convert(g).Message() != `copy: source_region: unknown region "mars-1"` {
		t.Fatalf("%v", g)
	}
}
