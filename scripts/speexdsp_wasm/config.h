/* callscribe's speexdsp WebAssembly build: float build with the smallft FFT (as configure
 * chooses by default), exported symbols visible, custom os_support (no stdio). */
#define FLOATING_POINT 1
#define USE_SMALLFT 1
#define EXPORT __attribute__((visibility("default")))
#define OS_SUPPORT_CUSTOM 1
#define DISABLE_WARNINGS 1
#define DISABLE_NOTIFICATIONS 1
#define RELEASE 1
