package main

import "testing"

func TestSplitRepoTag(t *testing.T) {
	for _, c := range []struct {
		in, repo, tag string
		ok            bool
	}{
		{"docker.io/team/app:v1", "docker.io/team/app", "v1", true},
		{"127.0.0.1:5000/team/app:1.2.3", "127.0.0.1:5000/team/app", "1.2.3", true},
		{"127.0.0.1:5000/team/app", "", "", false}, // the port is not a tag
		{"docker.io/team/app", "", "", false},
		{"docker.io/team/app:", "", "", false},
		{":v1", "", "", false},
		{"docker.io/team/app:bad tag", "", "", false},
		{"docker.io/team/app@sha256:abc", "", "", false},
	} {
		repo, tag, ok := splitRepoTag(c.in)
		if repo != c.repo || tag != c.tag || ok != c.ok {
			t.Errorf("splitRepoTag(%q) = %q, %q, %t", c.in, repo, tag, ok)
		}
	}
}
