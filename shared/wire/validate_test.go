package wire

import (
	"strings"
	"testing"
)

// A long error with line breaks and a stray byte still goes out as a valid
// decline.
func TestClipTextMakesAValidReason(t *testing.T) {
	long := "line one\nline two\xff " + strings.Repeat("é", 300)
	r := ClipText(long)
	if len(r) > maxTextLen || !strings.HasPrefix(r, "line one line two ") {
		t.Fatalf("ClipText = %q (%d bytes)", r, len(r))
	}
	if err := (&Decline{Round: 1, Reason: r}).Validate(); err != nil {
		t.Fatalf("a clipped reason does not validate: %v", err)
	}
	if got := ClipText("short"); got != "short" {
		t.Errorf("ClipText(short) = %q", got)
	}
}
