package status

import (
	"reflect"
	"strings"

	"github.com/troupe/troupe/internal/report"
	"github.com/troupe/troupe/internal/secret"
)

// scrub passes every string of the site (every exported field, list
// element and map key, at any depth) through scrubText, so the table and
// the JSON show the same safe text: whatever a new field carries from a
// host is covered without being named here.
func scrub(site *Site) { scrubValue(reflect.ValueOf(site)) }

// scrubText is a host's text as status shows it, in the table and in the
// JSON alike (a JSON consumer prints it too): cleaned of terminal escapes
// and controls (report.Clean), on one line (a newline could start a line
// that looks like the table's own), and with URL passwords masked.
func scrubText(s string) string {
	return secret.MaskURLs(strings.Join(report.Lines(s), " "))
}

func scrubValue(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			scrubValue(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				scrubValue(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			scrubValue(v.Index(i))
		}
	case reflect.Map:
		if v.IsNil() || v.Type().Key().Kind() != reflect.String {
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), v.Len())
		it := v.MapRange()
		for it.Next() {
			k := reflect.New(v.Type().Key()).Elem()
			k.SetString(scrubText(it.Key().String()))
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(it.Value())
			scrubValue(e)
			m.SetMapIndex(k, e)
		}
		if v.CanSet() {
			v.Set(m)
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString(scrubText(v.String()))
		}
	}
}
