#!/usr/bin/python3
"""Screenshot of a noVNC page in headless Chromium, taken once noVNC has drawn.

    cdp-screenshot.py URL OUT.png WIDTHxHEIGHT CANVAS-WxH SECONDS PROFILE-DIR

Chromium's own --screenshot waits for virtual time, which runs on while the
page waits for WebSocket data, so on a slow machine it shoots before noVNC
has drawn anything. This drives Chromium over the DevTools protocol (on a
pipe: --remote-debugging-pipe, messages ended by NUL) in real time: it opens
URL, waits until noVNC's canvas has the expected size and a picture in it
(then a second more, for the rest of the update), and saves a screenshot.
Exit status 0 with the screenshot; 1 when the canvas never came within
SECONDS (a screenshot is saved anyway); 2 when Chromium could not be driven.
"""
import base64
import fcntl
import json
import os
import select
import subprocess
import sys
import time

CANVAS_STATE = """(() => {
  const c = document.querySelector('canvas');
  if (!c || c.width < 2 || c.height < 2) return 'none';
  const d = c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
  return c.width + 'x' + c.height + ' ' + (d[0] + d[1] + d[2] > 0 ? 'drawn' : 'blank');
})()"""

# The page's own status line (noVNC's vnc_lite.html: Loading, Connecting,
# Connected to ..., Disconnected), or the document's state before it has one.
PAGE_STATUS = """(() => {
  const s = document.getElementById('status');
  return s ? s.textContent : 'document ' + document.readyState;
})()"""


class Chromium:
    def __init__(self, size, profile):
        low_cmd_r, self.cmd_w = os.pipe()
        self.res_r, low_res_w = os.pipe()
        w, h = size.split('x')
        args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                '--remote-debugging-pipe', f'--window-size={w},{h}', f'--user-data-dir={profile}',
                'about:blank']
        # Chromium reads the protocol on fd 3 and writes it on fd 4; the
        # pipe ends are moved there first (out of each other's way).
        cmd_r, res_w = fcntl.fcntl(low_cmd_r, fcntl.F_DUPFD, 10), fcntl.fcntl(low_res_w, fcntl.F_DUPFD, 10)
        self.proc = subprocess.Popen(
            ['bash', '-c', f'exec chromium "$@" 3<&{cmd_r} 4>&{res_w} {cmd_r}<&- {res_w}>&-', 'bash'] + args,
            pass_fds=(cmd_r, res_w),
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(profile, 'chromium.log'), 'ab'))
        for fd in (cmd_r, res_w, low_cmd_r, low_res_w):
            os.close(fd)
        self.buf = b''
        self.next_id = 0

    def call(self, method, params=None, session=None, timeout=60):
        self.next_id += 1
        msg = {'id': self.next_id, 'method': method, 'params': params or {}}
        if session:
            msg['sessionId'] = session
        os.write(self.cmd_w, json.dumps(msg).encode() + b'\0')
        deadline = time.monotonic() + timeout
        while True:
            while b'\0' in self.buf:
                raw, self.buf = self.buf.split(b'\0', 1)
                reply = json.loads(raw)
                if reply.get('id') == self.next_id:
                    if 'error' in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply['result']
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.res_r], [], [], left)[0]:
                raise RuntimeError(f'{method}: no answer from Chromium in {timeout} s')
            data = os.read(self.res_r, 1 << 20)
            if not data:
                raise RuntimeError(f'{method}: Chromium went away')
            self.buf += data

    def close(self):
        try:
            self.call('Browser.close', timeout=10)
        except RuntimeError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main():
    if len(sys.argv) != 7:
        print(__doc__, file=sys.stderr)
        return 2
    url, out, size, canvas, seconds, profile = sys.argv[1:]
    os.makedirs(profile, exist_ok=True)
    chromium = Chromium(size, profile)
    try:
        target = chromium.call('Target.createTarget', {'url': 'about:blank'})['targetId']
        session = chromium.call('Target.attachToTarget',
                                {'targetId': target, 'flatten': True})['sessionId']
        w, h = (int(v) for v in size.split('x'))
        chromium.call('Emulation.setDeviceMetricsOverride',
                      {'width': w, 'height': h, 'deviceScaleFactor': 1, 'mobile': False},
                      session=session)
        chromium.call('Page.enable', session=session)
        chromium.call('Page.navigate', {'url': url}, session=session)
        start = time.monotonic()
        deadline = start + float(seconds)
        state = ''
        # How far the page got, and when: what a canvas that never came
        # needs explained (a page still loading, a connection refused...).
        progress = []
        while time.monotonic() < deadline:
            state = chromium.call('Runtime.evaluate',
                                  {'expression': CANVAS_STATE, 'returnByValue': True},
                                  session=session)['result'].get('value', '')
            page = chromium.call('Runtime.evaluate',
                                 {'expression': PAGE_STATUS, 'returnByValue': True},
                                 session=session)['result'].get('value', '')
            seen = f'{page} / canvas {state}'
            if not progress or progress[-1][1] != seen:
                progress.append((time.monotonic() - start, seen))
            if state == canvas + ' drawn':
                time.sleep(1)
                break
            time.sleep(0.5)
        print('page: ' + '; '.join(f'{t:.0f} s {what}' for t, what in progress))
        shot = chromium.call('Page.captureScreenshot', {'format': 'png'}, session=session)
        with open(out, 'wb') as f:
            f.write(base64.b64decode(shot['data']))
        print(f'canvas: {state}')
        return 0 if state == canvas + ' drawn' else 1
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        print(f'cdp-screenshot: {e}', file=sys.stderr)
        return 2
    finally:
        chromium.close()


if __name__ == '__main__':
    sys.exit(main())
