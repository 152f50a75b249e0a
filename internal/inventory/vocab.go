package inventory

import (
	"maps"
	"slices"
)

// Vocab is the key vocabulary of inventory files: the very lists the
// decoder checks keys against, exported so package schema can generate a
// JSON Schema that cannot drift from them.
type Vocab struct {
	TopKeys, GroupKeys, TargetKeys, ConfigKeys, SSHKeys []string
	// SSHForms says what each ssh setting accepts, one of: string, env,
	// port, bool, duration, host_key_check.
	SSHForms      map[string]string
	HostKeyChecks []string
	// Patterns of names the decoder checks with regular expressions.
	GroupPattern, EnvPattern string
}

// sshForms mirrors (*loader).sshValue; a test checks it names exactly the
// sshKeys.
var sshForms = map[string]string{
	"user": "string", "private_key": "string", "known_hosts": "string", "jump": "string",
	"passphrase_env": "env", "sudo_password_env": "env",
	"port": "port", "agent": "bool", "sudo": "bool",
	"connect_timeout": "duration", "host_key_check": "host_key_check",
}

// Vocabulary returns copies of the decoder's key lists.
func Vocabulary() Vocab {
	cp := slices.Clone[[]string]
	return Vocab{
		TopKeys: cp(topKeys), GroupKeys: cp(groupKeys), TargetKeys: cp(targetKeys), ConfigKeys: cp(configKeys),
		SSHKeys: cp(sshKeys), SSHForms: maps.Clone(sshForms), HostKeyChecks: cp(hostKeyChecks),
		GroupPattern: groupNameRE.String(), EnvPattern: envNameRE.String(),
	}
}
