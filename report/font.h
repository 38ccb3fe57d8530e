/* A built-in 5x7 pixel font for plot labels: printable ASCII (32..126), each
 * glyph drawn in a 5-wide, 7-tall box; anything else is drawn as '?'. Text is
 * laid out on a FONT_ADVANCE x FONT_LINE grid (one blank column between
 * glyphs, two blank rows between lines). */
#ifndef HG_REPORT_FONT_H
#define HG_REPORT_FONT_H

#include <stdbool.h>

#define FONT_WIDTH   5
#define FONT_HEIGHT  7
#define FONT_ADVANCE 6
#define FONT_LINE    9

/* True when pixel (x, y) of character c's glyph is set (x < FONT_WIDTH,
 * y < FONT_HEIGHT, y = 0 at the top); false outside the box. */
bool font_pixel(char c, int x, int y);

#endif
