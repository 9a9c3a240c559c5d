#include <stdio.h>
int main(void) { fputs("milterhubctl: being written\n", stderr); return 1; }
