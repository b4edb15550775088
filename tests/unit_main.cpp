/* costream tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Main of the pure-core unit tests: they use no GStreamer at all.
 */
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
