// All of CKVM is header-inline; this file gives SwiftPM a translation unit.
#include "ckvm.h"
