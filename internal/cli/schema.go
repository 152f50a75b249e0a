package cli

import (
	"os"

	"github.com/troupe/troupe/internal/schema"
)

// SchemaCmd prints a JSON Schema generated from the decoders' own key lists.
type SchemaCmd struct {
	Kind string `arg:"" enum:"plan,role,inventory" help:"plan, role or inventory."`
}

func (c SchemaCmd) Run() error {
	b, err := schema.JSON(c.Kind)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(b)
	return err
}
