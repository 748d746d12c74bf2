// Package redact hides secrets in strings shown to people: the password
// of a Redis URL. It imports nothing but the standard library, so code
// that only displays URLs (the shell, the master's state file) need not
// pull in a Redis client.
package redact

import "strings"

// Password returns the password in a URL's userinfo ("" if none):
// "redis://user:secret@h" and "redis://secret@h" both give "secret".
func Password(raw string) string {
	scheme := strings.Index(raw, "://")
	at := strings.LastIndex(raw, "@")
	if scheme < 0 || at < scheme {
		return ""
	}
	userinfo := raw[scheme+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		return userinfo[i+1:]
	}
	return userinfo
}

// URL hides the password of a URL ("redis://:secret@h" becomes
// "redis://:xxxxx@h").
func URL(raw string) string {
	if Password(raw) == "" {
		return raw
	}
	scheme := strings.Index(raw, "://")
	at := strings.LastIndex(raw, "@")
	userinfo := raw[scheme+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		userinfo = userinfo[:i+1] + "xxxxx"
	} else {
		userinfo = "xxxxx"
	}
	return raw[:scheme+3] + userinfo + raw[at:]
}
