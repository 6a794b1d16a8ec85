// All of CLinux is header-inline; this file gives SwiftPM a translation unit.
#include "clinux.h"
