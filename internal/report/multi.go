package report

// Multi sends every event to each of rs in order; nil reporters are left out.
// Close closes all of them and returns the first error.
func Multi(rs ...Reporter) Reporter {
	m := make(multi, 0, len(rs))
	for _, r := range rs {
		if r != nil {
			m = append(m, r)
		}
	}
	return m
}

type multi []Reporter

func (m multi) Emit(e Event) {
	for _, r := range m {
		r.Emit(e)
	}
}

func (m multi) Close() error {
	var first error
	for _, r := range m {
		if err := r.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
