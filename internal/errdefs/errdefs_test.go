package errdefs

import (
	"errors"
	"fmt"
	"testing"
)

func TestInvalidNamesField(t *testing.T) {
	err := fmt.Errorf("copy: %w", Invalid("source_region", "unknown region %q", "mars-1"))
	if !errors.Is(err, ErrInvalidArgument) || Field(err) != "source_region" {
		t.Fatalf("class %v field %q", errors.Is(err, ErrInvalidArgument), Field(err))
	}
	if got := err.Error(); got != `copy: source_region: unknown region "mars-1"` {
		t.Fatalf("message %q", got)
	}
	if Field(errors.New("plain")) != "" {
		t.Error("a plain error names a field")
	}
}

func TestNewKeepsMessageAndClass(t *testing.T) {
	err := New(ErrUnauthenticated, "invalid bearer token")
	if !errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrInternal) || err.Error() != "invalid bearer token" {
		t.Fatalf("%q: is unauthenticated %v", err, errors.Is(err, ErrUnauthenticated))
	}
}
