package errdefs

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Every class survives the trip server → gRPC → client, message included.
func TestRoundTrip(t *testing.T) {
	for _, c := range table {
		err := fmt.Errorf("job j-1: %w", c.err)
		g := ToGRPC(err)
		if status.Code(g) != c.code {
			t.Errorf("%v: code %v, want %v", c.err, status.Code(g), c.code)
		}
		back := FromGRPC(g)
		if !errors.Is(back, c.err) || back.Error() != err.Error() {
			t.Errorf("%v: back as %q (is %v)", c.err, back, errors.Is(back, c.err))
		}
	}
	if Code(errors.New("plain")) != codes.Unknown || ToGRPC(nil) != nil || FromGRPC(nil) != nil {
		t.Error("unclassified or nil errors mishandled")
	}
	if Code(fmt.Errorf("x: %w", context.DeadlineExceeded)) != codes.DeadlineExceeded {
		t.Error("deadline not mapped")
	}
}

func TestInvalidNamesField(t *testing.T) {
	err := fmt.Errorf("copy: %w", Invalid("source_region", "unknown region %q", "mars-1"))
	if !errors.Is(err, ErrInvalidArgument) || Field(err) != "source_region" {
		t.Fatalf("class %v field %q", errors.Is(err, ErrInvalidArgument), Field(err))
	}
	if got := status.Convert(ToGRPC(err)).Message(); got != `copy: source_region: unknown region "mars-1"` {
		t.Fatalf("message %q", got)
	}
}
