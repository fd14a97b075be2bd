/* Scaling keeps the aspect ratio (a stretched desktop is worse than a border) and is
 * computed in 64 bits: sizes come from the server, up to 65535 each. */
#include "viewer-geometry.h"

#include <stdint.h>

NbViewerRect
nb_viewer_fit(int remote_w, int remote_h, int out_w, int out_h)
{
  NbViewerRect r = { 0, 0, 0, 0 };
  if (remote_w <= 0 || remote_h <= 0 || out_w <= 0 || out_h <= 0)
    return r;
  /* Width-bound if out_w / out_h < remote_w / remote_h. */
  if ((int64_t)out_w * remote_h <= (int64_t)out_h * remote_w) {
    r.w = out_w;
    r.h = (int)(((int64_t)out_w * remote_h + remote_w / 2) / remote_w);
  } else {
    r.h = out_h;
    r.w = (int)(((int64_t)out_h * remote_w + remote_h / 2) / remote_h);
  }
  if (r.w < 1)
    r.w = 1;
  if (r.h < 1)
    r.h = 1;
  r.x = (out_w - r.w) / 2;
  r.y = (out_h - r.h) / 2;
  return r;
}

static int
scale_back(int pos, int origin, int size, int remote)
{
  /* The centre of output pixel pos maps into remote pixel floor((pos+0.5)*remote/size). */
  int64_t p = (int64_t)(pos - origin) * 2 + 1;
  int64_t v = p * remote / ((int64_t)size * 2);
  if (p < 0)
    v = 0;
  if (v >= remote)
    v = remote - 1;
  return (int)v;
}

bool
nb_viewer_to_remote(NbViewerRect view, int remote_w, int remote_h, int out_x, int out_y,
                    int *remote_x, int *remote_y)
{
  if (remote_w <= 0 || remote_h <= 0 || view.w <= 0 || view.h <= 0)
    return false;
  *remote_x = scale_back(out_x, view.x, view.w, remote_w);
  *remote_y = scale_back(out_y, view.y, view.h, remote_h);
  return true;
}
