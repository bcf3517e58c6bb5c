package event

import (
	"encoding/json"
	"testing"
)

func TestSearchText(t *testing.T) {
	tests := []struct {
		name string
		e    Event
		want string
	}{
		{
			name: "all fields",
			e: Event{
				Actor:    Actor{ID: "usr_1", Type: "user", Name: "Ann Lee", Email: "ann@example.com", Role: "admin"},
				Action:   "user.login.failed",
				Reason:   "invalid_credentials",
				Targets:  []Target{{Type: "user", ID: "usr_2", Name: "Bob"}, {Type: "org", ID: "o1"}},
				Source:   Source{IP: "192.0.2.1", UserAgent: "curl"},
				Metadata: json.RawMessage(`{"a":{"deep":["x y",2.5,true,null]},"b":"é\n","c":1e+21,"key_only":{}}`),
			},
			want: "user.login.failed user login failed invalid_credentials usr_1 Ann Lee ann@example.com admin user usr_2 Bob org o1 x y 2.5 é\n 1e+21",
		},
		{
			name: "no dots, no optional fields",
			e:    Event{Actor: Actor{ID: "u"}, Action: "login"},
			want: "login u",
		},
		{
			name: "escaped metadata strings are decoded",
			e:    Event{Actor: Actor{ID: "u"}, Action: "a", Metadata: json.RawMessage(`{"k":"\"q\" \u00e9"}`)},
			want: `a u "q" é`,
		},
		{
			name: "empty",
			e:    Event{},
			want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.e.SearchText(); got != tt.want {
				t.Errorf("SearchText() = %q, want %q", got, tt.want)
			}
		})
	}
}
