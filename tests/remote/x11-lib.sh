# Helpers for tests that look at real windows under Xvfb: start an X server,
# wait for a condition, and read a window's geometry, title and pixels.
# Sourced by tests/remote/test-*.sh and tests/kvm/test-sdl-display.sh.
#
# nb_x11_start_xvfb and nb_x11_pixel keep their files in $NB_X11_DIR, and
# nb_x11_start_xvfb appends the server's pid to the caller's pids array.

# nb_x11_wait_for SECONDS COMMAND...: true once COMMAND succeeds.
nb_x11_wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  while [ $SECONDS -lt $deadline ]; do
    "$@" && return 0
    sleep 0.25
  done
  "$@"
}

# nb_x11_start_xvfb NAME SIZE: an X server on a free display; sets the
# variable NAME to ":N". Fails, with the server's log, if it does not start.
nb_x11_start_xvfb() {
  local name=$1 size=$2
  Xvfb -displayfd 3 -screen 0 "$size" -nolisten tcp -br -noreset \
    3>"$NB_X11_DIR/$name.displayfd" >"$NB_X11_DIR/$name-xvfb.log" 2>&1 &
  pids+=($!)
  if ! nb_x11_wait_for 20 test -s "$NB_X11_DIR/$name.displayfd"; then
    echo "Xvfb ($name) did not start: $(cat "$NB_X11_DIR/$name-xvfb.log")"
    return 1
  fi
  printf -v "$name" ':%s' "$(head -1 "$NB_X11_DIR/$name.displayfd")"
}

# nb_x11_geometry WINDOW: sets WX WY WW WH, the window's place and size on
# $DISPLAY.
nb_x11_geometry() {
  local info
  info=$(xwininfo -id "$1") || return 1
  WX=$(awk '/Absolute upper-left X/ {print $4}' <<<"$info")
  WY=$(awk '/Absolute upper-left Y/ {print $4}' <<<"$info")
  WW=$(awk '/Width:/ {print $2}' <<<"$info")
  WH=$(awk '/Height:/ {print $2}' <<<"$info")
}

# nb_x11_title WINDOW: the window's UTF-8 title.
nb_x11_title() {
  xprop -id "$1" _NET_WM_NAME | sed 's/^[^"]*"//; s/"$//'
}

# nb_x11_pixel X Y: "#RRGGBB" of $DISPLAY's screen at (X, Y).
nb_x11_pixel() {
  import -window root "$NB_X11_DIR/shot.png" 2>/dev/null &&
    convert "$NB_X11_DIR/shot.png" -crop "1x1+$1+$2" -depth 8 txt:- 2>/dev/null |
      grep -o '#[0-9A-F]\{6\}' | head -1
}

# nb_x11_no_leak_check PROGRAM: in the sanitizer build, LeakSanitizer reports
# allocations of the X11 extension libraries that SDL loads and unloads
# itself, nameless and with no stack to suppress. Leak checking is turned off
# for PROGRAM's runs; memory errors and undefined behaviour are still caught.
nb_x11_no_leak_check() {
  if grep -q libasan <(ldd "$1" 2>/dev/null); then
    export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
  fi
}

# nb_x11_close_window WINDOW: what a window manager's close button sends
# (WM_PROTOCOLS / WM_DELETE_WINDOW), with no window manager running.
nb_x11_close_window() {
  python3 - "$1" <<'PY'
import ctypes, sys
x = ctypes.cdll.LoadLibrary("libX11.so.6")
x.XOpenDisplay.restype = ctypes.c_void_p
x.XInternAtom.restype = ctypes.c_ulong
x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
class ClientMessage(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong),
                ("message_type", ctypes.c_ulong), ("format", ctypes.c_int),
                ("data", ctypes.c_long * 5)]
class Event(ctypes.Union):
    _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]
x.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long,
                         ctypes.POINTER(Event)]
x.XFlush.argtypes = [ctypes.c_void_p]
d = x.XOpenDisplay(None)
w = int(sys.argv[1])
e = Event()
e.xclient.type = 33  # ClientMessage
e.xclient.window = w
e.xclient.message_type = x.XInternAtom(d, b"WM_PROTOCOLS", 0)
e.xclient.format = 32
e.xclient.data[0] = x.XInternAtom(d, b"WM_DELETE_WINDOW", 0)
x.XSendEvent(d, w, 0, 0, ctypes.byref(e))
x.XFlush(d)
PY
}
