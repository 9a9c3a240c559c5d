/* mh_supervise: being written (issue 5) */
typedef int mh_supervise_placeholder;
