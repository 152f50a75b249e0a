#!/bin/bash
# systemctl stand-in for troupe lab hosts, which have no systemd.
# Installed as /usr/local/bin/systemctl (first in PATH and in sudo's secure_path).
#
#   systemctl [-q] [--now] start|stop|restart|try-restart|reload|reload-or-restart|
#             status|is-active|is-enabled|enable|disable|daemon-reload|show UNIT...
#
# Services are run the way their units do: ExecStart, User, Group,
# EnvironmentFile, Environment, RuntimeDirectory, UMask, WorkingDirectory,
# ExecStartPre and ExecReload are read at run time from
# /lib/systemd/system/UNIT.service plus /etc/systemd/system/UNIT.service.d/*.conf,
# so bookworm and trixie packages both work; built-in lines from the probe are
# the fallback when a unit file is missing or cannot be parsed.
# Trapperkeeper services (puppetserver, puppetdb) are ready when the file
# given by their --restart-file reads 1 (what the unit's ExecStartPost waits for).
# postgresql is driven with pg_ctlcluster for every cluster pg_lsclusters lists.
# Exit codes follow systemctl: is-active/status 3 = inactive, 4 = no such unit.
# State: pid files in /run/lab-systemctl (gone when the host stops), enabled
# units in /etc/lab-systemctl/enabled (lab-init starts them at boot).
# Output of the services: /var/log/lab-systemctl/UNIT.log.
STATE=/run/lab-systemctl
ENABLED=/etc/lab-systemctl/enabled
LOGDIR=/var/log/lab-systemctl
SELF=/usr/local/bin/systemctl
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

quiet=0 now=0 value=0 props=()
args=()
while [ $# -gt 0 ]; do
  case $1 in
  -q | --quiet) quiet=1 ;;
  --now) now=1 ;;
  --value) value=1 ;;
  -p) props+=("${2:-}"); shift ;;
  --property=*) props+=("${1#--property=}") ;;
  -*) ;; # --no-pager, --no-block, --system, --full, ...: accepted, ignored
  *) args+=("$1") ;;
  esac
  shift
done
act=${args[0]:-}
units=("${args[@]:1}")

say() { [ "$quiet" = 1 ] || echo "$@"; }
norm() { local u=${1%.service}; echo "$u"; }

# ---------------------------------------------------------------- unit parsing
unit_file() { # UNIT -> path of its unit file (template for NAME@INST)
  local u=$1 d t
  for d in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
    [ -f "$d/$u.service" ] && { echo "$d/$u.service"; return 0; }
  done
  case $u in *@*)
    t=${u%%@*}@
    for d in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
      [ -f "$d/$t.service" ] && { echo "$d/$t.service"; return 0; }
    done ;;
  esac
  return 1
}

reset_unit() {
  U_EXEC="" U_USER="" U_GROUP="" U_RTDIR="" U_UMASK=0022 U_TYPE=simple U_PIDFILE="" U_WD=/ U_TIMEOUT=300
  U_PRE=() U_RELOAD=() U_STOP=() U_ENVFILES=() U_ENV=()
}

parse_file() { # FILE: [Service] keys, continuation lines joined; "Key=" resets lists
  local f=$1 line="" raw sect="" key val
  while IFS= read -r raw || [ -n "$raw" ]; do
    case $raw in *\\) line+="${raw%\\} "; continue ;; esac
    line+=$raw
    line=${line#"${line%%[![:space:]]*}"}
    case $line in '#'* | ';'* | '') line=""; continue ;; '['*) sect=$line; line=""; continue ;; esac
    if [ "$sect" = "[Service]" ]; then
      key=${line%%=*} val=${line#*=}
      case $key in
      ExecStart) U_EXEC=$val ;;
      ExecStartPre) if [ -z "$val" ]; then U_PRE=(); else U_PRE+=("$val"); fi ;;
      ExecReload) if [ -z "$val" ]; then U_RELOAD=(); else U_RELOAD+=("$val"); fi ;;
      ExecStop) if [ -z "$val" ]; then U_STOP=(); else U_STOP+=("$val"); fi ;;
      User) U_USER=$val ;;
      Group) U_GROUP=$val ;;
      EnvironmentFile) if [ -z "$val" ]; then U_ENVFILES=(); else U_ENVFILES+=("$val"); fi ;;
      Environment) if [ -z "$val" ]; then U_ENV=(); else U_ENV+=("$val"); fi ;;
      RuntimeDirectory) U_RTDIR=$val ;;
      UMask) U_UMASK=$val ;;
      Type) U_TYPE=$val ;;
      PIDFile) U_PIDFILE=$val ;;
      WorkingDirectory) U_WD=${val#-} ;;
      TimeoutStartSec) case $val in *[!0-9]*) ;; *) U_TIMEOUT=$val ;; esac ;;
      esac
    fi
    line=""
  done <"$f"
}

builtin_unit() { # the probe's hard-coded lines (bookworm), used when no unit file is usable
  case $1 in
  puppetserver)
    U_USER=puppet U_RTDIR=puppetserver U_UMASK=027 U_ENVFILES=(/etc/default/puppetserver)
    U_EXEC='/usr/bin/java $JAVA_ARGS -Djruby.lib=/usr/share/jruby/lib -XX:+CrashOnOutOfMemoryError -XX:ErrorFile=/var/log/puppetserver/puppetserver_err_pid%%p.log -jar /usr/share/puppetserver/puppetserver.jar --config /etc/puppet/puppetserver/conf.d --bootstrap-config /etc/puppet/puppetserver/services.d --restart-file ${RUNTIME_DIRECTORY}/restart $TK_ARGS' ;;
  puppetdb)
    # The unit's line, not Debian's /etc/init.d/puppetdb: that script runs
    # `clojure.main -m puppetlabs.puppetdb.main`, which does not exist in
    # 7.12.1-3 (docs/lab.md); `puppetlabs.puppetdb.core services` works.
    U_USER=puppetdb U_RTDIR=puppetdb U_ENVFILES=(/etc/default/puppetdb)
    U_EXEC='/usr/bin/java $JAVA_ARGS -Djava.security.egd=/dev/urandom "-XX:OnOutOfMemoryError=kill -9 %%p" -cp /usr/share/puppetdb/puppetdb.jar clojure.main -m puppetlabs.puppetdb.core services --config /etc/puppetdb/conf.d --bootstrap-config /etc/puppetdb/bootstrap.cfg --restart-file ${RUNTIME_DIRECTORY}/restart' ;;
  haproxy)
    U_ENV=('"CONFIG=/etc/haproxy/haproxy.cfg" "PIDFILE=/run/haproxy.pid" "EXTRAOPTS=-S /run/haproxy-master.sock"')
    U_ENVFILES=(-/etc/default/haproxy)
    U_PRE=('/usr/sbin/haproxy -Ws -f $CONFIG -c -q $EXTRAOPTS')
    U_EXEC='/usr/sbin/haproxy -Ws -f $CONFIG -p $PIDFILE $EXTRAOPTS'
    U_RELOAD=('/usr/sbin/haproxy -Ws -f $CONFIG -c -q $EXTRAOPTS' '/bin/kill -USR2 $MAINPID') ;;
  puppet)
    U_ENVFILES=(-/etc/default/puppet)
    U_EXEC='/usr/bin/puppet agent $PUPPET_EXTRA_OPTS --no-daemonize' ;;
  *) return 1 ;;
  esac
}

load_unit() { # UNIT -> U_* set; returns 1 if the unit does not exist
  local u=$1 f d
  reset_unit
  if f=$(unit_file "$u"); then
    parse_file "$f"
    for d in "/etc/systemd/system/$u.service.d"/*.conf; do [ -f "$d" ] && parse_file "$d"; done
  fi
  if [ -z "$U_EXEC" ]; then
    reset_unit
    builtin_unit "$u" || return 1
  fi
  return 0
}

# Environment of a service: Environment= first, EnvironmentFile= overrides (as systemd).
load_env() {
  local e ef opt
  for e in "${U_ENV[@]}"; do eval "export $e"; done
  for ef in "${U_ENVFILES[@]}"; do
    opt=0
    case $ef in -*) ef=${ef#-} opt=1 ;; esac
    if [ -r "$ef" ]; then
      set -a; . "$ef"; set +a
    elif [ "$opt" = 0 ]; then
      echo "Failed to load environment file $ef" >&2; return 1
    fi
  done
  if [ -n "$U_RTDIR" ]; then export RUNTIME_DIRECTORY=/run/${U_RTDIR%% *}; fi
  return 0
}

# cmd_words LINE: sets CMD=(argv) with systemd-ish expansion ($VAR splits, ${VAR} and "..." do not; %% -> %).
cmd_words() {
  local l=$1
  while :; do case $l in [-@+!:]*) l=${l:1} ;; *) break ;; esac; done
  l=${l//%%/%}
  eval "CMD=($l)"
}

# run_line USER LINE: run an ExecStartPre/ExecReload/ExecStop line (leading '-': failure ignored).
run_line() {
  local user=$1 line=$2 ign=0 rc
  case $line in -*) ign=1 ;; esac
  case $line in +* | -+*) user=root ;; esac
  cmd_words "$line"
  if [ -n "$user" ] && [ "$user" != root ]; then
    runuser -u "$user" -- "${CMD[@]}"
  else
    "${CMD[@]}"
  fi
  rc=$?
  [ "$ign" = 1 ] && return 0
  return $rc
}

pidfile() { echo "$STATE/$1.pid"; }
alive() { [ -n "$1" ] && [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
mainpid() { local p; p=$(cat "$(pidfile "$1")" 2>/dev/null) && alive "$p" && echo "$p"; }
restart_file() { # the --restart-file argument of a trapperkeeper service, if any
  local i
  for ((i = 0; i < ${#CMD[@]}; i++)); do
    [ "${CMD[$i]}" = --restart-file ] && { echo "${CMD[$((i + 1))]}"; return 0; }
  done
  return 1
}
wait_tk() { # UNIT RESTARTFILE PID TIMEOUT: wait until trapperkeeper writes 1
  local u=$1 rf=$2 pid=$3 t=$4 i
  for ((i = 0; i < t * 2; i++)); do
    [ "$(head -c1 "$rf" 2>/dev/null)" = 1 ] && return 0
    alive "$pid" || { echo "Job for $u.service failed: the process exited (see $LOGDIR/$u.log)" >&2; return 1; }
    sleep 0.5
  done
  echo "Job for $u.service failed: not ready after ${t}s (see $LOGDIR/$u.log)" >&2
  return 1
}

# ---------------------------------------------------------------- postgresql
pg_clusters() { # UNIT -> "VER NAME" lines (postgresql = all clusters, postgresql@15-main = one)
  local inst
  case $1 in
  postgresql@*) inst=${1#postgresql@}; echo "${inst%%-*} ${inst#*-}" ;;
  *) command -v pg_lsclusters >/dev/null && pg_lsclusters -h | awk '{print $1, $2}' ;;
  esac
}
pg_active() { # any listed cluster online
  local v n
  while read -r v n; do
    [ -n "$v" ] && pg_lsclusters -h "$v" "$n" 2>/dev/null | grep -q ' online' && return 0
  done < <(pg_clusters "$1")
  return 1
}
pg_do() { # UNIT ACTION
  local v n rc=0
  command -v pg_ctlcluster >/dev/null || { echo "Unit $1.service not found." >&2; return 5; }
  while read -r v n; do
    [ -n "$v" ] || continue
    case $2 in
    start) pg_lsclusters -h "$v" "$n" | grep -q ' online' || pg_ctlcluster "$v" "$n" start || rc=1 ;;
    stop) pg_lsclusters -h "$v" "$n" | grep -q ' online' && { pg_ctlcluster "$v" "$n" stop || rc=1; } ;;
    restart) pg_ctlcluster "$v" "$n" restart || rc=1 ;;
    reload) pg_ctlcluster "$v" "$n" reload || rc=1 ;;
    esac
  done < <(pg_clusters "$1")
  return $rc
}

# ---------------------------------------------------------------- generic services
is_active() { # UNIT
  case $1 in
  postgresql | postgresql@*) pg_active "$1" ;;
  ssh | sshd) pgrep -x sshd >/dev/null ;;
  *) [ -n "$(mainpid "$1")" ] ;;
  esac
}

# tmpfiles: create the /run directories packages declare in tmpfiles.d
# (e.g. haproxy's /run/haproxy), which systemd-tmpfiles makes at boot.
tmpfiles() {
  local f t p m u g rest
  for f in /usr/lib/tmpfiles.d/*.conf /etc/tmpfiles.d/*.conf; do
    [ -f "$f" ] || continue
    while read -r t p m u g rest; do
      case $t in d | D) ;; *) continue ;; esac
      case $p in /run/* | /var/run/*) ;; *) continue ;; esac
      [ -d "$p" ] && continue
      [ "$m" = - ] && m=0755
      [ "$u" = - ] && u=root
      [ "$g" = - ] && g=root
      install -d -m "$m" -o "$u" -g "$g" "$p" 2>/dev/null
    done <"$f"
  done
}

do_start() { # UNIT (runs in a clean environment, see the __start re-exec below)
  local u=$1 grp rf pid home shell
  tmpfiles
  case $u in postgresql | postgresql@*) pg_do "$u" start; return ;; ssh | sshd) return 0 ;; esac
  load_unit "$u" || { echo "Failed to start $u.service: Unit $u.service not found." >&2; return 5; }
  is_active "$u" && return 0
  if [ -n "$U_USER" ] && [ "$U_USER" != root ]; then
    grp=${U_GROUP:-$(id -gn "$U_USER")} || return 1
    home=$(getent passwd "$U_USER" | cut -d: -f6) shell=$(getent passwd "$U_USER" | cut -d: -f7)
  else
    U_USER=root grp=${U_GROUP:-root} home=/root shell=/bin/bash
  fi
  export HOME=$home USER=$U_USER LOGNAME=$U_USER SHELL=$shell
  local d
  for d in $U_RTDIR; do install -d -o "$U_USER" -g "$grp" -m 755 "/run/$d"; done
  load_env || return 1
  cmd_words "$U_EXEC"
  local main=("${CMD[@]}") pre
  local exe=${main[0]}
  [ "${exe:0:1}" = / ] || exe=$(command -v "$exe") || { echo "$u: $exe not found" >&2; return 1; }
  rf=$(restart_file) && rm -f "$rf"
  for pre in "${U_PRE[@]}"; do run_line "$U_USER" "$pre" || { echo "Job for $u.service failed (ExecStartPre)." >&2; return 1; }; done
  CMD=("${main[@]}")
  mkdir -p "$LOGDIR" "$STATE"
  if [ "$U_TYPE" = forking ]; then
    umask "$U_UMASK"
    (cd "$U_WD" && if [ "$U_USER" = root ]; then "$exe" "${CMD[@]:1}"; else runuser -u "$U_USER" -- "$exe" "${CMD[@]:1}"; fi) >>"$LOGDIR/$u.log" 2>&1 || return 1
    for _ in $(seq 1 50); do [ -s "$U_PIDFILE" ] && break; sleep 0.1; done
    cp "$U_PIDFILE" "$(pidfile "$u")" 2>/dev/null
  elif [ "$U_TYPE" = oneshot ]; then
    (umask "$U_UMASK"; cd "$U_WD" && "$exe" "${CMD[@]:1}") >>"$LOGDIR/$u.log" 2>&1
    return
  else
    start-stop-daemon --start --background --make-pidfile --pidfile "$(pidfile "$u")" \
      --chuid "$U_USER:$grp" --umask "$U_UMASK" --chdir "$U_WD" --output "$LOGDIR/$u.log" \
      --exec "$exe" -- "${CMD[@]:1}" || return 1
  fi
  pid=$(cat "$(pidfile "$u")" 2>/dev/null)
  if [ -n "$rf" ]; then
    wait_tk "$u" "$rf" "$pid" "$U_TIMEOUT"
  else
    sleep 0.3
    alive "$pid" || { echo "Job for $u.service failed: the process exited (see $LOGDIR/$u.log)" >&2; return 1; }
  fi
}

do_stop() { # UNIT
  local u=$1 pid s d
  case $u in postgresql | postgresql@*) pg_do "$u" stop; return ;; ssh | sshd) return 0 ;; esac
  load_unit "$u" || { echo "Failed to stop $u.service: Unit $u.service not loaded." >&2; return 5; }
  pid=$(mainpid "$u")
  if [ -n "$pid" ]; then
    if [ ${#U_STOP[@]} -gt 0 ]; then
      (export MAINPID=$pid; load_env && for s in "${U_STOP[@]}"; do run_line root "$s"; done) >>"$LOGDIR/$u.log" 2>&1
    fi
    start-stop-daemon --stop --quiet --oknodo --retry TERM/90/KILL/5 --pidfile "$(pidfile "$u")" >/dev/null
  fi
  rm -f "$(pidfile "$u")"
  for d in $U_RTDIR; do rm -rf "/run/$d"; done
  return 0
}

do_reload() { # UNIT
  local u=$1 pid rf s
  case $u in postgresql | postgresql@*) pg_do "$u" reload; return ;; ssh | sshd) pkill -HUP -x sshd; return 0 ;; esac
  load_unit "$u" || { echo "Failed to reload $u.service: Unit $u.service not found." >&2; return 5; }
  pid=$(mainpid "$u") || { echo "$u.service is not active, cannot reload." >&2; return 7; }
  load_env || return 1
  cmd_words "$U_EXEC"
  if rf=$(restart_file); then # trapperkeeper: 0 -> HUP -> wait for 1 (what the unit's ExecReload does)
    echo -n 0 >"$rf"
    kill -HUP "$pid" && wait_tk "$u" "$rf" "$pid" 120
    return
  fi
  [ ${#U_RELOAD[@]} -gt 0 ] || { echo "Failed to reload $u.service: Job type reload is not applicable for unit $u.service." >&2; return 1; }
  export MAINPID=$pid
  for s in "${U_RELOAD[@]}"; do run_line root "$s" || return 1; done
}

# Starting re-execs this script with a clean environment, like systemd would.
if [ "$act" = __start ]; then
  do_start "${units[0]}"
  exit
fi
start() { env -i PATH="$PATH" LANG=C.UTF-8 "$SELF" __start "$1"; }

exists_unit() { case $1 in postgresql | postgresql@*) [ -n "$(pg_clusters "$1" 2>/dev/null)" ] ;; ssh | sshd) return 0 ;; *) load_unit "$1" ;; esac; }

rc=0
case $act in
daemon-reload | daemon-reexec | reset-failed) exit 0 ;;
"") echo "usage: systemctl start|stop|restart|reload|status|is-active|is-enabled|enable|disable|daemon-reload|show UNIT..." >&2; exit 1 ;;
esac
[ ${#units[@]} -gt 0 ] || { echo "Too few arguments." >&2; exit 1; }
if [ "$(id -u)" != 0 ]; then
  case $act in status | is-active | is-enabled | show) ;; *) echo "Failed to $act: Access denied (run as root)" >&2; exit 1 ;; esac
fi
for u in "${units[@]}"; do
  u=$(norm "$u")
  case $act in
  start) start "$u" || rc=$? ;;
  stop) do_stop "$u" || rc=$? ;;
  restart) do_stop "$u"; start "$u" || rc=$? ;;
  try-restart | condrestart) if is_active "$u"; then do_stop "$u"; start "$u" || rc=$?; fi ;;
  reload) do_reload "$u" || rc=$? ;;
  reload-or-restart | reload-or-try-restart)
    if is_active "$u"; then do_reload "$u" || rc=$?; else start "$u" || rc=$?; fi ;;
  is-active)
    if is_active "$u"; then say active; else say inactive; rc=3; fi ;;
  is-failed)
    if is_active "$u"; then say active; else say inactive; fi; rc=1 ;;
  is-enabled)
    if [ -e "$ENABLED/$u" ]; then say enabled
    elif exists_unit "$u"; then say disabled; rc=1
    else echo "Failed to get unit file state for $u.service: No such file or directory" >&2; rc=1; fi ;;
  enable)
    mkdir -p "$ENABLED"; touch "$ENABLED/$u"
    [ "$now" = 1 ] && { start "$u" || rc=$?; } ;;
  disable)
    rm -f "$ENABLED/$u"
    [ "$now" = 1 ] && do_stop "$u" ;;
  mask | unmask) ;;
  status)
    if ! exists_unit "$u"; then echo "Unit $u.service could not be found." >&2; rc=4; continue; fi
    en=disabled; [ -e "$ENABLED/$u" ] && en=enabled
    if is_active "$u"; then
      echo "● $u.service"
      echo "     Loaded: loaded (lab systemctl stand-in; $en)"
      echo "     Active: active (running)"
      p=$(mainpid "$u") && echo "   Main PID: $p"
    else
      echo "○ $u.service"
      echo "     Loaded: loaded (lab systemctl stand-in; $en)"
      echo "     Active: inactive (dead)"
      rc=3
    fi
    [ -f "$LOGDIR/$u.log" ] && { echo; tail -n 10 "$LOGDIR/$u.log"; } ;;
  show)
    [ ${#props[@]} -gt 0 ] || props=(Id ActiveState SubState MainPID UnitFileState)
    for p in "${props[@]}"; do
      IFS=, read -ra pp <<<"$p"
      for q in "${pp[@]}"; do
        case $q in
        Id) v=$u.service ;;
        ActiveState) if is_active "$u"; then v=active; else v=inactive; fi ;;
        SubState) if is_active "$u"; then v=running; else v=dead; fi ;;
        MainPID) v=$(mainpid "$u") || v=0 ;;
        UnitFileState) if [ -e "$ENABLED/$u" ]; then v=enabled; else v=disabled; fi ;;
        LoadState) if exists_unit "$u"; then v=loaded; else v=not-found; fi ;;
        *) v="" ;;
        esac
        if [ "$value" = 1 ]; then echo "$v"; else echo "$q=$v"; fi
      done
    done ;;
  *) echo "systemctl (lab stand-in): unsupported command '$act'" >&2; exit 1 ;;
  esac
done
exit $rc
