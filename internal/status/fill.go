package status

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/troupe/troupe/internal/puppet"
)

// fill turns h's sections into its typed fields. A probe that did not answer
// leaves its error in the field; levels are set later by Judge.
func fill(h *Host) {
	if h.Error != "" && len(h.secs) == 0 {
		return
	}
	s := h.spec
	get := func(name string) section {
		sec, ok := h.secs[name]
		if !ok {
			return section{Body: "no answer"} // the script stopped before it
		}
		return sec
	}
	if sec := get("pkg"); sec.Done {
		have := parsePackages(sec.Body)
		for _, p := range s.packages() {
			h.Packages = append(h.Packages, Package{Role: p.Label, Name: p.Name, Version: have[p.Name]})
		}
	}
	if svcs := s.services(); len(svcs) > 0 {
		sec := get("svc")
		states := strings.Split(sec.Body, "\n")
		for i, svc := range svcs {
			state := "unknown"
			switch {
			case !sec.Done:
				state = "timeout"
			case i < len(states) && strings.TrimSpace(states[i]) != "":
				state = firstLine(states[i])
			}
			h.Services = append(h.Services, ServiceState{Name: svc, State: state})
		}
	}
	if s.enrolled() {
		h.Cert = readCert(get("cert"))
	}
	if s.server() {
		calls := splitHTTP(get("puppetserver"), len(serverURLs))
		h.Server = readServer(calls[0], calls[1], calls[2])
		h.Code = readCode(get("code"))
	}
	if s.has(RoleCA) {
		h.CA = readCA(get("cacert"), get("crl"))
		// absent from answers captured before the script read it
		if sec, ok := h.secs["crlpem"]; ok {
			readRevoked(h.CA, sec)
		}
	}
	if s.has(RoleLB) {
		h.Pool = readPool(get("lbstate"), get("lbstat"))
		if s.VIP != "" {
			h.Pool.VIP = s.VIP
			if msg := get("vip").failure(); msg != "" {
				h.Pool.VIPError = msg
			} else {
				h.Pool.HoldsVIP = strings.Contains(get("vip").Body, " "+s.VIP+"/")
			}
		}
	}
	if s.has(RolePuppetDB) {
		h.PuppetDB = readPuppetDB(get("pdbstatus"), get("pdbnodes"))
	}
	if s.has(RoleCA) && s.Standby {
		h.Replica = readPusher(get("careplica"))
	}
	if s.has(RoleStandby) {
		h.Replica = readSnapshot(get("replica"))
	}
}

// keyValues reads "key value" lines.
func keyValues(body string) map[string]string {
	kv := map[string]string{}
	for _, l := range strings.Split(body, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), " "); ok {
			kv[k] = strings.TrimSpace(v)
		}
	}
	return kv
}

// unixTime reads seconds since the epoch; zero when it is not a number.
func unixTime(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}

// readPusher is the CA's side: what the last push carried against what
// the CA holds now.
func readPusher(sec section) *Replica {
	if msg := sec.failure(); msg != "" {
		return &Replica{Error: msg}
	}
	kv := keyValues(sec.Body)
	r := &Replica{Serial: kv["curserial"], Pushed: kv["serial"], Time: unixTime(kv["pushed"]),
		Watching: kv["watch"], Result: kv["result"], State: kv["castate"]}
	switch {
	case kv["cursum"] == "" || r.Serial == "":
		r.Error = "the CA directory could not be read"
	case kv["sum"] == "":
		r.Error = "never pushed to the standby"
	}
	r.InSync = r.Error == "" && kv["sum"] == kv["cursum"]
	if now, changed := unixTime(kv["now"]), unixTime(kv["changed"]); !r.InSync && !now.IsZero() && !changed.IsZero() {
		r.Lag = max(int64(now.Sub(changed)/time.Second), 0)
	}
	return r
}

// readSnapshot is the standby's side: its current snapshot of the CA
// directory, and whether its puppetserver runs.
func readSnapshot(sec section) *Replica {
	if msg := sec.failure(); msg != "" {
		return &Replica{Error: msg}
	}
	kv := keyValues(sec.Body)
	r := &Replica{Serial: kv["serial"], Time: unixTime(kv["snapshot"]), Server: kv["server"], State: kv["castate"]}
	if r.Serial == "" || r.Time.IsZero() {
		r.Error = "no snapshot of the CA directory in " + ReplicaCurrent
	}
	return r
}

func readCert(sec section) *Cert {
	if msg := sec.failure(); msg != "" {
		return &Cert{Error: msg}
	}
	blocks, err := parsePEMs(sec.Body)
	if err != nil {
		return &Cert{Error: err.Error()}
	}
	b := blocks[0]
	return &Cert{NotAfter: b.Time, SANs: b.SANs, Serial: b.Serial, Issuer: b.Issuer}
}

func readServer(simple, critical, jruby section) *Server {
	srv := &Server{}
	// 503 with the state ("starting", "error") when not running
	body, code, err := httpBody(simple)
	switch {
	case err != nil:
		srv.Error = err.Error()
	case body == "":
		srv.Error = fmt.Sprintf("HTTP %d", code)
	default:
		srv.Simple = firstLine(body)
	}
	if body, err := httpOK(critical); err != nil {
		srv.criticalErr = err.Error()
	} else if all, err := parseCritical(body); err != nil {
		srv.criticalErr = err.Error()
	} else {
		for _, st := range all {
			if st.State != "running" {
				srv.NotRunning = append(srv.NotRunning, st)
			}
		}
	}
	if body, err := httpOK(jruby); err != nil {
		srv.JRubyError = err.Error()
	} else if j, err := parseJRuby(body); err != nil {
		srv.JRubyError = err.Error()
	} else {
		srv.JRuby = j
	}
	return srv
}

func readCode(sec section) *Code {
	if msg := sec.failure(); msg != "" {
		return &Code{Error: msg, Envs: []Env{}}
	}
	envs := parseCode(sec.Body)
	if envs == nil {
		envs = []Env{}
	}
	return &Code{Envs: envs}
}

func readCA(certs, crls section) *CA {
	ca := &CA{Certs: []Expiry{}, CRLs: []Expiry{}, Revoked: -1}
	var errs []string
	for _, x := range []struct {
		sec  section
		into *[]Expiry
		what string
	}{{certs, &ca.Certs, "CA certificate"}, {crls, &ca.CRLs, "CRL"}} {
		if msg := x.sec.failure(); msg != "" {
			errs = append(errs, x.what+": "+msg)
			continue
		}
		blocks, err := parsePEMs(x.sec.Body)
		if err != nil {
			errs = append(errs, x.what+": "+err.Error())
			continue
		}
		for _, b := range blocks {
			*x.into = append(*x.into, Expiry{Name: b.Name, Time: b.Time})
		}
	}
	ca.Error = strings.Join(errs, "; ")
	return ca
}

func readPool(state, stat section) *Pool {
	for _, sec := range []section{state, stat} {
		if msg := sec.failure(); msg != "" {
			return &Pool{Error: "admin socket: " + msg, Servers: []PoolServer{}}
		}
	}
	servers, err := parseLB(state.Body, stat.Body)
	if err != nil {
		return &Pool{Error: err.Error(), Servers: []PoolServer{}}
	}
	return &Pool{Servers: servers}
}

func readPuppetDB(status, nodes section) *PuppetDB {
	p := &PuppetDB{}
	// 503 with the JSON status while starting or in maintenance mode
	body, code, err := httpBody(status)
	if err == nil && code != 200 && code != 503 {
		err = fmt.Errorf("HTTP %d: %s", code, firstLine(body))
	}
	if err != nil {
		p.Error = "status: " + err.Error()
		return p
	}
	if p.State, p.QueueDepth, err = parsePDBStatus(body); err != nil {
		p.Error = err.Error()
		return p
	}
	body, err = httpOK(nodes)
	if err == nil {
		p.Nodes, p.LastCommand, err = parsePDBNodes(body)
	}
	if err != nil {
		p.Error = "nodes query: " + err.Error()
	}
	return p
}

// readRevoked reads the serials the CA's CRLs revoke, by issuer. A CRL that
// cannot be read is the CA's error: no certificate then looks fine for it.
func readRevoked(ca *CA, sec section) {
	if msg := sec.failure(); msg != "" {
		ca.Error = strings.TrimPrefix(ca.Error+"; CRL serials: "+msg, "; ")
		return
	}
	crls, err := puppet.ParseCRLs([]byte(sec.Body))
	if err != nil {
		ca.Error = strings.TrimPrefix(ca.Error+"; CRL serials: "+err.Error(), "; ")
		return
	}
	ca.revoked, ca.Revoked = map[string]map[string]bool{}, 0
	for _, crl := range crls {
		issuer := crl.Issuer.CommonName
		if ca.revoked[issuer] == nil {
			ca.revoked[issuer] = map[string]bool{}
		}
		for _, e := range crl.RevokedCertificateEntries {
			ca.revoked[issuer][serialHex(e.SerialNumber)] = true
			ca.Revoked++
		}
	}
}

// serialHex is a serial as openssl's serial= prints it: upper-case hex, an
// even number of digits.
func serialHex(n *big.Int) string {
	s := strings.ToUpper(n.Text(16))
	if len(s)%2 == 1 {
		s = "0" + s
	}
	return s
}
