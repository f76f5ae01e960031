package demo

import (
	"fmt"
	"io"
)

// WriteCommands writes the commands a user can try against trustgate at gate (host:port, plain
// HTTP), one per line, each with what it should show. notaryDir is a scratch trust directory
// for the notary CLI: every demo run has new keys, so the CLI must not reuse trust from an
// earlier run.
//
// Commands and configuration lines are indented by two spaces, titles are not; the e2e test runs
// the crane, skopeo and notary lines exactly as written.
func (e *Env) WriteCommands(w io.Writer, gate, notaryDir string) {
	reg := e.registry.addr
	ref := func(host string, s Sample) string { return host + "/" + s.Repo + ":" + s.Tag }
	fmt.Fprintf(w, "Try it. trustgate serves on %s; the embedded registry at %s stands in for docker.io,\n", gate, reg)
	fmt.Fprintf(w, "and the embedded trust server at %s holds the signatures.\n\n", e.NotaryURL)
	section(w, "crane (go-containerregistry):", [][2]string{
		{"crane digest --insecure " + ref(gate, e.Signed), short(e.Signed.Signed) + ", the signed digest"},
		{"crane digest --insecure " + ref(gate, e.Unsigned), "refused: 404 MANIFEST_UNKNOWN, not signed"},
		{"crane digest --insecure " + ref(gate, e.Moved), short(e.Moved.Signed) + ", the signed digest"},
		{"crane digest --insecure " + ref(reg, e.Moved), short(e.Moved.Upstream) + ": the registry's tag, moved after signing"},
		{"crane manifest --insecure " + ref(gate, e.Multi), "the signed multi-platform index"},
		{"crane export --insecure " + ref(gate, e.Signed) + " - | tar -xO hello.txt", "the image's one file"},
	})
	section(w, "skopeo:", [][2]string{
		{"skopeo inspect --tls-verify=false docker://" + ref(gate, e.Signed), ""},
		{"skopeo copy --src-tls-verify=false docker://" + ref(gate, e.Signed) + " oci:hello-oci:signed", ""},
	})
	section(w, "notary CLI (the trust data, verified as docker content trust verifies it):", [][2]string{
		{"notary -s " + e.NotaryURL + " -d " + notaryDir + " list " + e.Signed.GUN(), ""},
	})
	section(w, "docker (classic image store): /etc/docker/daemon.json, then restart dockerd", [][2]string{
		{fmt.Sprintf(`{"registry-mirrors": ["http://%s"], "insecure-registries": ["%s"]}`, gate, gate), ""},
		{"docker pull " + e.Signed.Repo + ":" + e.Signed.Tag, "pulled through trustgate at the signed digest"},
		{"docker pull " + e.Unsigned.Repo + ":" + e.Unsigned.Tag, "trustgate refuses; docker then tries Docker Hub itself (block that egress)"},
	})
	section(w, "containerd (and docker's containerd image store): /etc/containerd/certs.d/docker.io/hosts.toml", [][2]string{
		{fmt.Sprintf("server = %q", "http://"+gate), ""},
		{fmt.Sprintf("[host.%q]", "http://"+gate), ""},
		{`  capabilities = ["pull", "resolve"]`, ""},
		{"ctr images pull --hosts-dir /etc/containerd/certs.d docker.io/" + e.Signed.Repo + ":" + e.Signed.Tag, "through trustgate"},
		{"ctr images pull --hosts-dir /etc/containerd/certs.d docker.io/" + e.Unsigned.Repo + ":" + e.Unsigned.Tag, "refused, and no fallback"},
	})
}

// section writes a title and its lines indented, with comments aligned.
func section(w io.Writer, title string, lines [][2]string) {
	width := 0
	for _, l := range lines {
		if l[1] != "" {
			width = max(width, len(l[0]))
		}
	}
	fmt.Fprintln(w, title)
	for _, l := range lines {
		if l[1] == "" {
			fmt.Fprintf(w, "  %s\n", l[0])
			continue
		}
		fmt.Fprintf(w, "  %-*s   # %s\n", width, l[0], l[1])
	}
	fmt.Fprintln(w)
}
