package main

import (
	"log/slog"
	"path/filepath"

	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/sigverify"
	"github.com/trustgate/trustgate/sigverify/binding"
	"github.com/trustgate/trustgate/sigverify/cosign"
	"github.com/trustgate/trustgate/sigverify/notation"
)

// loaders builds the cosign and Notation checkers a policy names (files are read at start-up;
// an error names the policy key at fault).
func loaders() policy.Loaders {
	return policy.Loaders{
		Cosign: func(c policy.CosignConfig) (sigverify.Checker, error) {
			cfg := cosign.Config{KeyFiles: c.Keys, TrustedRoot: c.TrustedRoot,
				RequireTlog: c.RequireTlog, RequireTimestamp: c.RequireTimestamp}
			for _, id := range c.Identities {
				cfg.Identities = append(cfg.Identities, cosign.Identity{Issuer: id.Issuer, IssuerRegex: id.IssuerRegex,
					Subject: id.Subject, SubjectRegex: id.SubjectRegex})
			}
			return cosign.New(cfg)
		},
		Notation: func(c policy.NotationConfig) (sigverify.Checker, error) {
			return notation.New(notation.Config{TrustPolicy: c.TrustPolicy, TrustStore: c.TrustStore})
		},
	}
}

func newPolicy(cfg *Config) (*policy.Policy, error) {
	return policy.NewWith(cfg.Policy, loaders()) // errors name the policy key
}

// bindingsDir is where the tag bindings of cosign and Notation live.
func bindingsDir(cfg *Config) string { return filepath.Join(cfg.TrustDir, "bindings") }

// newBindings opens the binding store under trust_dir (in memory for ":memory:").
func newBindings(cfg *Config, log *slog.Logger) (binding.Store, error) {
	if cfg.TrustDir == memoryTrustDir {
		log.Warn("cosign and Notation tag bindings are kept in memory only: a restart forgets them")
		return &binding.MemStore{}, nil
	}
	return binding.NewFileStore(bindingsDir(cfg))
}
