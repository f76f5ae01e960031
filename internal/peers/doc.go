// Package peers starts the real programs trustgate talks to — distribution's registry, notary-server,
// the notary CLI, dockerd, crane and skopeo — on loopback for tests and benchmarks.
//
// The project rule is "real peers, not mocks": a fake registry or trust server only proves that the
// proxy agrees with its author's reading of the protocol. Every helper therefore runs the pinned
// binary that scripts/install-deps.sh installs, in a temporary directory, on a port the kernel picks,
// and stops exactly the process it started when the test ends. A missing binary fails the test with
// the install command instead of skipping it, so a green run always means the peers were exercised.
//
// The helpers take a testing.TB so benchmarks (bench/) can use them as well as tests.
package peers
