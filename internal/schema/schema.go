// Package schema generates JSON Schemas (draft 2020-12) for plan, role and
// inventory files, for editors and CI linters. Every key comes from the
// lists the decoders check against (plan.Vocabulary, inventory.Vocabulary)
// and every action's fields from its Go struct's yaml tags, so the schemas
// cannot drift from what troupe accepts. The decoders stay the authority:
// rules that need more than a file's shape (template references, selector
// targets, roles that exist) are theirs alone.
package schema

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/troupe/troupe/internal/inventory"
	"github.com/troupe/troupe/internal/plan"
	"github.com/troupe/troupe/internal/puppet"
	"github.com/troupe/troupe/internal/step"
)

// Dialect is the JSON Schema version the schemas are written in.
const Dialect = "https://json-schema.org/draft/2020-12/schema"

type obj = map[string]any

// actionKinds are the registry's kinds a step can name: the loader drops
// kinds that collide with a control or block key, and so does the schema.
func actionKinds(v plan.Vocab) ([]string, error) {
	var out []string
	for _, k := range (step.Registry{}).Kinds() {
		if slices.Contains(v.ControlKeys, k) || slices.Contains(v.BlockKinds, k) {
			continue
		}
		out = append(out, k)
	}
	return out, nil
}

// Plan is the schema of plan files.
func Plan() (map[string]any, error) {
	return document("plan", func(v plan.Vocab) []string { return v.PlanKeys })
}

// Role is the schema of role files. A role's steps may hold its body slot
// (`- body: DESCRIPTION`): where the including step's own steps go.
func Role() (map[string]any, error) {
	s, err := document("role", func(v plan.Vocab) []string { return v.RoleKeys })
	if err != nil {
		return nil, err
	}
	defs := s["$defs"].(obj)
	defs["slot"] = obj{"type": "object", "properties": obj{"body": obj{"type": "string"}},
		"required": []string{"body"}, "additionalProperties": false}
	defs["steps"] = obj{"type": "array", "minItems": 1,
		"items": obj{"anyOf": []any{obj{"$ref": "#/$defs/step"}, obj{"$ref": "#/$defs/slot"}}}}
	return s, nil
}

func document(what string, keys func(plan.Vocab) []string) (map[string]any, error) {
	v := plan.Vocabulary()
	defs, err := stepDefs(v)
	if err != nil {
		return nil, err
	}
	str := obj{"type": "string"}
	top, err := object(what, keys(v), map[string]any{
		"name": str, "description": str,
		"params": obj{"type": "object", "propertyNames": obj{"pattern": v.ParamPattern}, "additionalProperties": obj{"$ref": "#/$defs/param"}},
		"vars":   obj{"type": "object"},
		"steps":  obj{"$ref": "#/$defs/steps"},
		// named package sets: part of the site → the version it moves to
		"packages": obj{"type": "object", "additionalProperties": obj{
			"type": "object", "minProperties": 1, "propertyNames": obj{"enum": puppet.PartNames},
			"additionalProperties": obj{"type": "string"}}},
	})
	if err != nil {
		return nil, err
	}
	top["required"] = []string{"steps"}
	top["$schema"] = Dialect
	top["title"] = "troupe " + what
	top["$defs"] = defs
	return top, nil
}

// stepDefs are the definitions plans and roles share: steps, params and one
// per action kind.
func stepDefs(v plan.Vocab) (map[string]any, error) {
	kinds, err := actionKinds(v)
	if err != nil {
		return nil, err
	}
	defs := obj{"steps": obj{"type": "array", "minItems": 1, "items": obj{"$ref": "#/$defs/step"}}}
	param, err := object("param", v.ParamKeys, map[string]any{
		"type": obj{"enum": v.ParamTypes}, "description": obj{"type": "string"},
		"required": obj{"type": "boolean"}, "default": obj{},
	})
	if err != nil {
		return nil, err
	}
	defs["param"] = param

	props := obj{}
	for _, k := range v.ControlKeys {
		s, err := controlForm(v, v.ControlForms[k])
		if err != nil {
			return nil, fmt.Errorf("schema: control %q: %w", k, err)
		}
		if n := v.ControlNotes[k]; n != "" {
			s["description"] = n // shown by editors
		}
		props[k] = s
	}
	for _, k := range v.BlockKinds {
		switch k {
		case "steps":
			props[k] = obj{"$ref": "#/$defs/steps"}
		default: // role, plan: a name or a path
			props[k] = obj{"type": "string"}
		}
	}
	var one []any // exactly one action or block key; a role may wrap steps
	for _, k := range append(append([]string{}, kinds...), v.BlockKinds...) {
		if k == "steps" {
			one = append(one, obj{"required": []string{k}, "not": obj{"required": []string{"role"}}})
			continue
		}
		one = append(one, obj{"required": []string{k}})
	}
	for _, k := range kinds {
		s, err := actionSchema(k)
		if err != nil {
			return nil, err
		}
		defs["action_"+k] = s
		props[k] = obj{"$ref": "#/$defs/action_" + k}
	}
	var blocks, actionOnly []any
	for _, k := range v.BlockKinds {
		blocks = append(blocks, obj{"required": []string{k}})
	}
	for _, k := range v.ActionOnly {
		actionOnly = append(actionOnly, obj{"required": []string{k}})
	}
	defs["step"] = obj{
		"type": "object", "properties": props, "additionalProperties": false,
		"required": []string{"id"}, "oneOf": one,
		// retries, until, register … make no sense on a block, role or sub-plan
		"if": obj{"anyOf": blocks}, "then": obj{"not": obj{"anyOf": actionOnly}},
	}
	return defs, nil
}

// object builds a closed object schema with exactly keys, each described by
// table; a key the decoder knows and the table does not is an error.
func object(what string, keys []string, table map[string]any) (map[string]any, error) {
	props := obj{}
	for _, k := range keys {
		s, ok := table[k]
		if !ok {
			return nil, fmt.Errorf("schema: %s key %q has no schema", what, k)
		}
		props[k] = s
	}
	return obj{"type": "object", "properties": props, "additionalProperties": false}, nil
}

// durationPattern is what time.ParseDuration reads.
const durationPattern = `^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$`

func controlForm(v plan.Vocab, form string) (map[string]any, error) {
	switch form {
	case "string":
		return obj{"type": "string"}, nil
	case "id":
		return obj{"type": "string", "pattern": v.IDPattern}, nil
	case "register":
		return obj{"type": "string", "pattern": v.RegisterPattern}, nil
	case "selector":
		return obj{"anyOf": []any{obj{"type": "string", "minLength": 1}, obj{"type": "array", "items": obj{"type": "string"}}}}, nil
	case "targets": // a selector, or exactly one host by name
		host := obj{"type": "object", "properties": obj{"host": obj{"type": "string", "minLength": 1}},
			"required": []string{"host"}, "additionalProperties": false}
		return obj{"anyOf": []any{obj{"type": "string", "minLength": 1}, obj{"type": "array", "items": obj{"type": "string"}}, host}}, nil
	case "condition":
		return obj{"type": []string{"string", "boolean"}}, nil
	case "count":
		return obj{"anyOf": []any{obj{"type": "integer", "minimum": 0}, obj{"type": "string", "pattern": `^[0-9]+%?$`}}}, nil
	case "batch": // a count, or a template rendered at run time ("{{ .params.batch }}")
		return obj{"anyOf": []any{obj{"type": "integer", "minimum": 1}, obj{"type": "string", "pattern": `^([0-9]+%?|.*\{\{.*)$`}}}, nil
	case "int":
		return obj{"type": "integer", "minimum": 0}, nil
	case "duration":
		return obj{"type": "string", "pattern": durationPattern}, nil
	case "bool":
		return obj{"type": "boolean"}, nil
	case "map":
		return obj{"type": "object"}, nil
	}
	return nil, fmt.Errorf("unknown form %q", form)
}

// actionSchema reflects over a kind's struct. Action bodies are decoded by
// goccy/go-yaml, which reads any scalar into a string field and a quoted
// number into an int, so the schema allows what the decoder allows.
func actionSchema(kind string) (map[string]any, error) {
	a, ok := (step.Registry{}).New(kind)
	if !ok {
		return nil, fmt.Errorf("schema: unknown action kind %q", kind)
	}
	t := reflect.TypeOf(a).Elem()
	s, err := typeSchema(t)
	if err != nil {
		return nil, fmt.Errorf("schema: action %s: %w", kind, err)
	}
	s["title"] = kind
	if props, ok := s["properties"].(obj); ok && props["parts"] != nil {
		// set: a plan's package set (or a list of them), read as parts
		props["set"] = obj{"anyOf": []any{obj{"type": "string"}, obj{"type": "array", "items": obj{"type": "string"}}}}
	}
	if _, ok := reflect.New(t).Interface().(step.Shorthand); ok {
		return obj{"title": kind, "anyOf": []any{obj{"type": "string"}, s}}, nil
	}
	return s, nil
}

func typeSchema(t reflect.Type) (map[string]any, error) {
	switch t.Kind() {
	case reflect.Pointer:
		return typeSchema(t.Elem())
	case reflect.String:
		return obj{"type": []string{"string", "number", "boolean"}}, nil
	case reflect.Bool:
		return obj{"type": "boolean"}, nil
	case reflect.Int, reflect.Int64, reflect.Int32:
		return obj{"anyOf": []any{obj{"type": "integer"}, obj{"type": "string", "pattern": `^-?[0-9]+$`}}}, nil
	case reflect.Slice:
		items, err := typeSchema(t.Elem())
		return obj{"type": "array", "items": items}, err
	case reflect.Map:
		vals, err := typeSchema(t.Elem())
		return obj{"type": "object", "additionalProperties": vals}, err
	case reflect.Struct:
		props := obj{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				return nil, fmt.Errorf("field %s has no yaml tag", f.Name)
			}
			fs, err := typeSchema(f.Type)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			props[name] = fs
		}
		return obj{"type": "object", "properties": props, "additionalProperties": false}, nil
	}
	return nil, fmt.Errorf("no schema for Go type %s", t)
}

// Inventory is the schema of inventory files.
func Inventory() (map[string]any, error) {
	v := inventory.Vocabulary()
	sshProps := obj{}
	for _, k := range v.SSHKeys {
		s, err := sshForm(v, v.SSHForms[k])
		if err != nil {
			return nil, fmt.Errorf("schema: ssh setting %q: %w", k, err)
		}
		sshProps[k] = s
	}
	str := obj{"type": "string", "minLength": 1}
	vars := obj{"type": "object"} // any values; {env: NAME} reads the environment
	config := obj{"$ref": "#/$defs/config"}
	targets := obj{"anyOf": []any{obj{"type": "null"}, obj{"type": "array", "items": obj{"$ref": "#/$defs/target"}}}}
	groups := obj{"$ref": "#/$defs/groups"}
	defs := obj{
		"ssh": obj{"type": "object", "properties": sshProps, "additionalProperties": false},
		"groups": obj{"type": "object", "additionalProperties": obj{"$ref": "#/$defs/group"},
			"propertyNames": obj{"pattern": v.GroupPattern, "not": obj{"const": "all"}}},
	}
	var err error
	if defs["config"], err = object("config", v.ConfigKeys, obj{"ssh": obj{"$ref": "#/$defs/ssh"}}); err != nil {
		return nil, err
	}
	if defs["group"], err = object("group", v.GroupKeys, obj{"targets": targets, "vars": vars, "config": config, "groups": groups}); err != nil {
		return nil, err
	}
	target, err := object("target", v.TargetKeys, obj{"name": str, "address": str,
		"port": obj{"$ref": "#/$defs/port"}, "aliases": obj{"anyOf": []any{obj{"type": "string"}, obj{"type": "array", "items": obj{"type": "string"}}}},
		"vars": vars, "config": config})
	if err != nil {
		return nil, err
	}
	target["required"] = []string{"name"}
	defs["target"] = obj{"anyOf": []any{obj{"type": "string", "minLength": 1}, target}}
	defs["port"] = obj{"type": "integer", "minimum": 1, "maximum": 65535}
	top, err := object("inventory", v.TopKeys, obj{"version": obj{"const": 1}, "vars": vars, "config": config,
		"targets": targets, "groups": groups})
	if err != nil {
		return nil, err
	}
	top["required"] = []string{"version"}
	top["$schema"] = Dialect
	top["title"] = "troupe inventory"
	top["$defs"] = defs
	return top, nil
}

func sshForm(v inventory.Vocab, form string) (map[string]any, error) {
	switch form {
	case "string":
		return obj{"type": "string", "minLength": 1}, nil
	case "env":
		return obj{"type": "string", "pattern": v.EnvPattern}, nil
	case "port":
		return obj{"$ref": "#/$defs/port"}, nil
	case "bool":
		return obj{"type": "boolean"}, nil
	case "duration":
		return obj{"type": "string", "pattern": durationPattern}, nil
	case "host_key_check":
		return obj{"enum": v.HostKeyChecks}, nil
	}
	return nil, fmt.Errorf("unknown form %q", form)
}

// Names are the schemas `troupe schema` prints.
var Names = []string{"plan", "role", "inventory"}

// JSON returns the named schema, indented.
func JSON(name string) ([]byte, error) {
	gen := map[string]func() (map[string]any, error){"plan": Plan, "role": Role, "inventory": Inventory}[name]
	if gen == nil {
		return nil, fmt.Errorf("unknown schema %q (one of %s)", name, strings.Join(Names, ", "))
	}
	s, err := gen()
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	return append(b, '\n'), err
}
