package spec

import "testing"

func TestSafeToRewrite(t *testing.T) {
	for doc, want := range map[string]string{
		"workers:\n  foo: 2\nterm_timeout: 5s\n": "",
		"":                                       "",
		"foo: 2\nbar: 1\n":                       "it is a resque-pool.yml, which poolctl's layout would replace",
		"workers: {foo: 1}\nenvironments:\n  prod: {workers: {foo: 2}}\n": "it has environments: sections, which saving would flatten",
		"workers:\n  foo: 2 # two\n":                                      "it has comments, which saving would lose",
		"# pool\nworkers:\n  foo: 2\n":                                    "it has comments, which saving would lose",
		"workers: &w\n  foo: 2\n":                                         "it uses anchors or aliases, which saving would expand",
		"workers: [1\n":                                                   "it does not parse",
	} {
		ok, why := SafeToRewrite([]byte(doc))
		if why != want || ok != (want == "") {
			t.Errorf("SafeToRewrite(%q) = %v, %q; want %q", doc, ok, why, want)
		}
	}
}
