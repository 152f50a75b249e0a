package plan

import (
	"maps"
	"slices"
)

// Vocab is the key vocabulary of plan and role files: the very lists the
// decoder checks keys against, exported so package schema can generate a
// JSON Schema that cannot drift from them.
type Vocab struct {
	PlanKeys, RoleKeys, ParamKeys, ParamTypes []string
	ControlKeys, BlockKinds, ActionOnly       []string
	// ControlForms says what each control accepts, one of: string, id,
	// register, selector, targets (a selector or {host: NAME}), condition,
	// count, batch, int, duration, bool, map.
	ControlForms map[string]string
	// ControlNotes say, for the controls that need more than their form,
	// what they do: the reference prints each beside its control.
	ControlNotes map[string]string
	// Patterns of names the decoder checks with regular expressions.
	IDPattern, RegisterPattern, ParamPattern string
}

// controlForms mirrors the decoding switch in (*loadCtx).step; a test checks
// it names exactly the controlKeys.
var controlForms = map[string]string{
	"id": "id", "name": "string", "targets": "targets", "delegate_to": "selector",
	"when": "condition", "until": "condition", "creates": "condition", "unless": "condition",
	"onlyif": "condition", "changed_when": "condition", "failed_when": "condition",
	"serial": "batch", "max_failures": "count", "retries": "int",
	"delay": "duration", "timeout": "duration",
	"run_once": "bool", "sudo": "bool", "ignore_errors": "bool", "ignore_unreachable": "bool",
	"register": "register", "vars": "map", "params": "map",
}

// controlNotes are the reference's words on controls whose form does not
// say enough (see Vocab.ControlNotes).
var controlNotes = map[string]string{
	"ignore_unreachable": "For a step whose host may be down, such as fencing a failed server before failing over from it. " +
		"A host that only such steps target or delegate to is not connected before the run (any other host still is, and stops the run before anything changes when it cannot be reached): " +
		"it is connected, checked and locked when such a step reaches it. " +
		"When it cannot be (connection refused, no route, no SSH answer within connect_timeout; not a name DNS does not know), " +
		"the step is skipped for that target with a reason starting `unreachable: `, and its `register` holds `skipped: true` and `unreachable: true`; " +
		"every other registered value holds `unreachable: false`, so a later step reads `{{ .registered.fence.unreachable }}` as it is. " +
		"Registers are per host: to act elsewhere on what it found, target the host that may be down, `delegate_to` the other, and set ignore_unreachable there too. " +
		"The host stays unreachable for the rest of the run: later steps with ignore_unreachable skip it at once, without dialling it again, and a step without it that reaches it fails with the same error. " +
		"Such a skip is not done: `--resume` runs the step again. " +
		"A host that answers and refuses (a host key that does not match, failed authentication, a lock another run holds) fails the step as ever. " +
		"On a block, role or sub-plan it applies to every step inside that does not set its own. " +
		"The peers an action names itself (`lb_server`'s load balancers, `puppet_cert`'s CA) are connected before the run regardless",
}

// Vocabulary returns copies of the decoder's key lists.
func Vocabulary() Vocab {
	cp := slices.Clone[[]string]
	return Vocab{
		PlanKeys: cp(planKeys), RoleKeys: cp(roleKeys), ParamKeys: cp(paramKeys), ParamTypes: cp(ParamTypes),
		ControlKeys: cp(controlKeys), BlockKinds: cp(blockKinds), ActionOnly: cp(actionOnly),
		ControlForms: maps.Clone(controlForms), ControlNotes: maps.Clone(controlNotes),
		IDPattern: idRE.String(), RegisterPattern: registerRE.String(), ParamPattern: paramRE.String(),
	}
}
