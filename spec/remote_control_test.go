package spec

import (
	"strings"
	"testing"
)

func TestRemoteControlSetting(t *testing.T) {
	for _, tc := range []struct {
		yml  string
		want bool
	}{
		{"workers: {foo: 1}\n", false},
		{"workers: {foo: 1}\nremote_control: true\n", true},
		{"workers: {foo: 1}\nremote_control: false\n", false},
		{"workers: {foo: 1}\nremote_control: false\nenvironments: {production: {remote_control: true}}\n", true},
	} {
		c, err := ParseConfig([]byte(tc.yml), "p.yml", "production")
		if err != nil {
			t.Fatalf("%q: %v", tc.yml, err)
		}
		if c.RemoteControl != tc.want {
			t.Errorf("%q: RemoteControl = %v, want %v", tc.yml, c.RemoteControl, tc.want)
		}
		data, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(data), "remote_control: true"); got != tc.want {
			t.Errorf("%q: Marshal wrote\n%s", tc.yml, data)
		}
		back, err := ParseConfig(data, "back.yml", "")
		if err != nil || back.RemoteControl != tc.want {
			t.Errorf("%q: round trip: %v, %v", tc.yml, back, err)
		}
	}
}

func TestRemoteControlInvalid(t *testing.T) {
	for _, v := range []string{`"true"`, "yes", "1", "[true]", "on"} {
		_, err := ParseConfig([]byte("workers: {foo: 1}\nremote_control: "+v+"\n"), "p.yml", "")
		if err == nil || !strings.Contains(err.Error(), "p.yml:2: remote_control: must be true or false") {
			t.Errorf("remote_control: %s: error = %v, want p.yml:2: remote_control: must be true or false", v, err)
		}
	}
}

func TestMergeOverrides(t *testing.T) {
	o := Spec{{"foo", 2}, {"bar", 0}}
	got := MergeOverrides(o, Spec{{"bar", 3}, {"baz", 0}, {"foo", 1}})
	if s := got.UpdateString(); s != "foo=1:bar=3:baz=0" {
		t.Errorf("MergeOverrides = %q, want foo=1:bar=3:baz=0", s)
	}
	if s := o.UpdateString(); s != "foo=2:bar=0" {
		t.Errorf("MergeOverrides modified its input: %q", s)
	}
}
