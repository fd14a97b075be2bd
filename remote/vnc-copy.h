/* Sends moved content to libvncserver's clients as CopyRect, exactly.
 *
 * libvncserver's own rfbDoCopyRegion is not used: it needs a cursor for
 * clients without cursor-shape updates (we have none: the guest draws its
 * own), and it moves the pixels while a client thread may be encoding them,
 * so that client could get some pixels of the moved picture, then the copy
 * that moves them again. Here the copy is only made while no CopyRect
 * client is sending: the pixels are moved, the rest of the refresh is
 * painted and the copy and the rest are scheduled for every CopyRect client
 * at once, holding their send and update locks (taken with trylock, so the
 * main loop never waits for a client and no lock order can deadlock).
 * Clients without CopyRect are then told of all of it as modified, as
 * before: they need no lock, whatever they were sending is sent again. */
#pragma once

#include <rfb/rfb.h>
#include <rfb/rfbregion.h>
#include <stdbool.h>

/* Moves copy (destination rectangles, inside the screen, sources too) by
 * (dx, dy) in screen's 32-bpp framebuffer, calls paint(ctx) to bring the
 * rest of the refresh into the framebuffer, and schedules copy as a
 * CopyRect (as modified pixels for clients without CopyRect) and rest as
 * modified, for every client. Returns false, having done nothing, when a
 * CopyRect client is sending now or its locks are busy, or no client takes
 * CopyRect: the caller then sends it all as modified. */
bool nb_vnc_copy_region(rfbScreenInfoPtr screen, sraRegionPtr copy, int dx, int dy,
                        sraRegionPtr rest, void (*paint)(void *ctx), void *ctx);
