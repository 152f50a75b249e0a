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
	"run_once": "bool", "sudo": "bool", "ignore_errors": "bool",
	"register": "register", "vars": "map", "params": "map",
}

// Vocabulary returns copies of the decoder's key lists.
func Vocabulary() Vocab {
	cp := slices.Clone[[]string]
	return Vocab{
		PlanKeys: cp(planKeys), RoleKeys: cp(roleKeys), ParamKeys: cp(paramKeys), ParamTypes: cp(ParamTypes),
		ControlKeys: cp(controlKeys), BlockKinds: cp(blockKinds), ActionOnly: cp(actionOnly),
		ControlForms: maps.Clone(controlForms),
		IDPattern:    idRE.String(), RegisterPattern: registerRE.String(), ParamPattern: paramRE.String(),
	}
}
