package config

import (
	"strings"
	"testing"
)

// TestRecordSettings checks before_image and include_transaction_details.
func TestRecordSettings(t *testing.T) {
	const base = "task: t\nsource: {mysql: {host: h, user: u}}\ntables: [{include: \"a.%\"}]\ntarget: file:///lake\n"
	tests := []struct {
		yml         string
		beforeImage string
		details     bool
		err         string
	}{
		{yml: "", beforeImage: ""},
		{yml: "before_image: none", beforeImage: "none"},
		{yml: "before_image: pk-only", beforeImage: "pk-only"},
		{yml: "before_image: all\ninclude_transaction_details: true", beforeImage: "all", details: true},
		{yml: "include_transaction_details: false"},
		{yml: "before_image: full", err: `before_image: must be one of none, pk-only, all; got "full"`},
		{yml: "before_image: all\nmigration: full-load", err: "before_image: is all, but a full-load task has no update or delete records"},
		{yml: "before_image: none\nmigration: full-load", beforeImage: "none"},
		{yml: "include_transaction_details: yes please", err: "include_transaction_details: line 5"},
	}
	for _, tt := range tests {
		t.Run(tt.yml, func(t *testing.T) {
			c, err := Parse([]byte(base + tt.yml + "\n"))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.BeforeImage != tt.beforeImage || c.IncludeTransactionDetails != tt.details {
				t.Errorf("before_image %q, include_transaction_details %v; want %q, %v", c.BeforeImage, c.IncludeTransactionDetails, tt.beforeImage, tt.details)
			}
		})
	}
}
