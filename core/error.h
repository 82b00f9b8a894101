// longseq::Error, fail() and LS_CHECK for core and everything above it. They are defined in
// kernels/error.h because the kernels' host code throws the same type and kernels/ includes nothing
// from core/.
#pragma once

#include "kernels/error.h"
